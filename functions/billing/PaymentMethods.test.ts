import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Db } from "../../shared/Db.ts"
import { type Running, sql, start } from "../../shared/testing/harness.ts"
import { PaymentMethods } from "./PaymentMethods.ts"
import { PaymentProvider, type SaveFailure } from "./Provider.ts"
import { billingDb, billingDbOptions } from "./testing/engineDb.ts"

// How a provider's answer to a token becomes the API's: what the test provider cannot do (decline a token on save, be
// unreachable) through a provider that answers what the test says, on the real Postgres.

const options = billingDbOptions()
const answers: Record<string, SaveFailure> = {
  tok_refused: { _tag: "declined", reason: "card_declined" },
  tok_down: { _tag: "unavailable", reason: "connection refused" },
  tok_wrong: { _tag: "invalid", reason: "no such token" },
}
const provider = Layer.succeed(
  PaymentProvider,
  PaymentProvider.of({
    name: "stripe",
    savePaymentMethod: (ownerId, token) =>
      Effect.succeed(
        answers[token] ?? {
          provider: "stripe",
          customerRef: `cus_${ownerId}`,
          paymentMethodRef: `pm_${token}`,
          brand: "mastercard",
          last4: "4444",
        },
      ),
    charge: () => Effect.die("not charged here"),
  }),
)

let running: Running<PaymentMethods | PaymentProvider | Db>
beforeAll(async () => {
  running = await start(PaymentMethods.layer.pipe(Layer.provideMerge(provider), Layer.provideMerge(billingDb(options))))
}, 30_000)
afterAll(async () => {
  await running?.close()
  await sql(`DROP SCHEMA IF EXISTS ${options.schema} CASCADE`)
})

const save = (customer: string, token: string) =>
  Effect.runPromise(
    Effect.flatMap(Effect.service(PaymentMethods), (methods) => Effect.result(methods.save(customer, token))).pipe(
      Effect.provideContext(running.context),
    ),
  )

describe("saving a payment method", () => {
  it("keeps what the provider saved, one row per customer", async () => {
    const saved = await save("00000000-0000-4000-8000-000000000001", "tok_ok")
    expect(saved).toMatchObject({
      _tag: "Success",
      success: { provider: "stripe", brand: "mastercard", last4: "4444" },
    })
    const rows = await sql(`SELECT customer_ref, payment_method_ref FROM ${options.schema}.payment_methods`)
    expect(rows).toEqual([
      { customer_ref: "cus_00000000-0000-4000-8000-000000000001", payment_method_ref: "pm_tok_ok" },
    ])
  })

  it("maps a declined token to 402 payment_declined with the provider's reason, and keeps nothing", async () => {
    const customer = "00000000-0000-4000-8000-000000000002"
    const result = await save(customer, "tok_refused")
    expect(result._tag).toBe("Failure")
    const error = (result as { failure: { status: number; code: string; declineCode: string } }).failure
    expect(error).toMatchObject({ status: 402, code: "payment_declined", declineCode: "card_declined" })
    expect(await sql(`SELECT 1 FROM ${options.schema}.payment_methods WHERE customer_id = $1`, [customer])).toEqual([])
  })

  it("maps the provider unreachable to 503 and an unknown token to 400 naming token", async () => {
    const down = await save("00000000-0000-4000-8000-000000000003", "tok_down")
    expect((down as { failure: { status: number; code: string } }).failure).toMatchObject({
      status: 503,
      code: "service_unavailable",
    })
    const wrong = await save("00000000-0000-4000-8000-000000000003", "tok_wrong")
    expect((wrong as { failure: { status: number; errors: unknown } }).failure).toMatchObject({
      status: 400,
      errors: [{ path: "token" }],
    })
  })
})
