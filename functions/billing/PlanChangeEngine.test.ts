import { randomUUID } from "node:crypto"
import { Effect, Layer, ManagedRuntime, Option } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { Permissions } from "../../shared/access/Permissions.ts"
import { Db } from "../../shared/Db.ts"
import { Idempotency } from "../../shared/Idempotency.ts"
import { Notifier } from "../../shared/Notifier.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { manifest } from "./module.ts"
import { PlanChanges } from "./PlanChange.ts"
import { PaymentProvider } from "./Provider.ts"
import { Reads } from "./Reads.ts"
import { ReceiptRecipients } from "./Receipts.ts"
import * as TestProvider from "./TestProvider.ts"
import { billingDb, billingDbOptions } from "./testing/engineDb.ts"

// Plan changes with the engine (Lifecycle.ts) as the app runs them: subscriptions made by the engine on test clocks,
// a change's pending lines taken by the engine's renewal, a reset's invoice charged right after the change.

const layer = PlanChanges.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      Lifecycle.layer({ retryScheduleDays: [1, 3, 5] }),
      Idempotency.layer,
      Reads.layer,
      Permissions.local(() => Effect.succeed(false)),
    ),
  ),
  Layer.provideMerge(
    Layer.mergeAll(TestProvider.layer, Outbox.layer(manifest), Notifier.layer, ReceiptRecipients.local({})),
  ),
  Layer.provideMerge(billingDb(billingDbOptions())),
)
const runtime = ManagedRuntime.make(layer)
afterAll(() => runtime.dispose())
type Services = PlanChanges | Lifecycle | Db | Permissions | PaymentProvider
const run = <A, E>(effect: Effect.Effect<A, E, Services>) => runtime.runPromise(effect)
const sql = <A extends Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
  run(Effect.flatMap(Effect.service(Db), (db) => db.query<A>(text.replaceAll("billing.", `${db.schema}.`), params)))

const plan = async (name: string, amount: number, interval = "month") => {
  const [row] = await sql<{ id: string }>(
    `INSERT INTO billing.plans (code, name, amount, currency, interval_unit, interval_count)
     VALUES ($1, $2, $3, 'EUR', $4, 1) RETURNING id`,
    [`${name.toLowerCase()}-${randomUUID().slice(0, 8)}`, name, amount, interval],
  )
  return row?.id ?? ""
}

/** A customer with the test provider's `token` saved, subscribed by the engine on a clock frozen at `at`. */
const subscribed = async (planId: string, at: string, token = "tok_visa") => {
  const customer = randomUUID()
  const provider = await run(Effect.service(PaymentProvider))
  const saved = await Effect.runPromise(provider.savePaymentMethod(customer, token))
  if (!("customerRef" in saved)) throw new Error(`token ${token} not saved`)
  await sql(
    `INSERT INTO billing.payment_methods (customer_id, provider, customer_ref, payment_method_ref, brand, last4)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [customer, saved.provider, saved.customerRef, saved.paymentMethodRef, saved.brand, saved.last4],
  )
  const [clock] = await sql<{ id: string }>(
    "INSERT INTO billing.test_clocks (frozen_time, created_by) VALUES ($1, $2) RETURNING id",
    [at, customer],
  )
  const made = await run(
    Effect.flatMap(Effect.service(Lifecycle), (engine) =>
      engine.subscribe({ customerId: customer, planId, testClockId: clock?.id }),
    ),
  )
  return { customer, clock: clock?.id ?? "", subscription: made.subscription }
}

const setClock = (clock: string, at: string) =>
  sql("UPDATE billing.test_clocks SET frozen_time = $2 WHERE id = $1", [clock, at])
const change = (customer: string, subscriptionId: string, planId: string) =>
  run(
    Effect.flatMap(Effect.service(PlanChanges), (changes) =>
      changes.change(customer, subscriptionId, planId, Option.none()),
    ),
  )
const invoices = (subscriptionId: string) =>
  sql<{
    id: string
    status: string
    lines: ReadonlyArray<{ description: string; amount: number }>
    total: string
    period_start: Date
    period_end: Date
  }>("SELECT * FROM billing.invoices WHERE subscription_id = $1 ORDER BY period_start", [subscriptionId])

describe("plan change with the engine", () => {
  it("puts a change's lines on the renewal's invoice, in order, once; the next period on the new plan", async () => {
    const basic = await plan("Basic", 1000)
    const pro = await plan("Pro", 3000)
    const { customer, clock, subscription } = await subscribed(basic, "2027-01-31T09:00:00Z")
    expect(subscription.status).toBe("active")
    // Halfway through (Jan 31 → Feb 28: 28 days), upgrade.
    await setClock(clock, "2027-02-14T09:00:00Z")
    const made = await change(customer, subscription.id, pro)
    expect(made.lines.map((line) => line.amount)).toEqual([-500, 1500])
    // The period ends: the engine renews at Feb 28 and takes the lines, once.
    await setClock(clock, "2027-02-28T09:00:00Z")
    await run(
      Effect.flatMap(Effect.service(Lifecycle), (engine) =>
        engine.renew(subscription.id, new Date("2027-02-28T09:00:00Z")),
      ),
    )
    const [first, renewal] = await invoices(subscription.id)
    expect(Number(first?.total)).toBe(1000)
    expect(renewal?.lines.map((line) => line.amount)).toEqual([3000, -500, 1500])
    expect(renewal?.lines.slice(1)).toEqual(made.lines)
    expect(Number(renewal?.total)).toBe(4000)
    // The anchor on the 31st: the next period ends Mar 31, not Mar 28.
    expect(renewal?.period_end.toISOString()).toBe("2027-03-31T09:00:00.000Z")
    const [left] = await sql<{ n: string }>(
      "SELECT count(*) AS n FROM billing.pending_lines WHERE subscription_id = $1 AND invoice_id IS NULL",
      [subscription.id],
    )
    expect(Number(left?.n)).toBe(0)
  })

  it("charges a reset's invoice right after the change; the renewal a year on bills the new plan", async () => {
    const basic = await plan("Basic", 1000)
    const annual = await plan("Annual", 10_000, "year")
    const { customer, clock, subscription } = await subscribed(basic, "2027-01-01T00:00:00Z")
    await setClock(clock, "2027-01-16T00:00:00Z")
    const made = await change(customer, subscription.id, annual)
    const reset = (await invoices(subscription.id)).find((invoice) => invoice.id === made.invoiceId)
    expect(reset).toMatchObject({ status: "paid" })
    expect(Number(reset?.total)).toBe(10_000 - 516)
    // A year on, the engine renews from the new anchor on the annual plan.
    await setClock(clock, "2028-01-16T00:00:00Z")
    await run(
      Effect.flatMap(Effect.service(Lifecycle), (engine) =>
        engine.renew(subscription.id, new Date("2028-01-16T00:00:00Z")),
      ),
    )
    const last = (await invoices(subscription.id)).at(-1)
    expect(last?.period_start.toISOString()).toBe("2028-01-16T00:00:00.000Z")
    expect(last?.period_end.toISOString()).toBe("2029-01-16T00:00:00.000Z")
    expect(Number(last?.total)).toBe(10_000)
  })

  it("leaves a declined reset's invoice open to the dunning schedule", async () => {
    const basic = await plan("Basic", 1000)
    const annual = await plan("Annual", 10_000, "year")
    const { customer, clock, subscription } = await subscribed(basic, "2027-01-01T00:00:00Z")
    // The card is replaced by one the test provider declines.
    const provider = await run(Effect.service(PaymentProvider))
    const declined = await Effect.runPromise(provider.savePaymentMethod(customer, "tok_declined"))
    if (!("paymentMethodRef" in declined)) throw new Error("tok_declined not saved")
    await sql("UPDATE billing.payment_methods SET payment_method_ref = $2 WHERE customer_id = $1", [
      customer,
      declined.paymentMethodRef,
    ])
    await setClock(clock, "2027-01-16T00:00:00Z")
    const made = await change(customer, subscription.id, annual)
    const [invoice] = await sql<{ status: string; attempts: number }>(
      "SELECT status, attempts FROM billing.invoices WHERE id = $1",
      [made.invoiceId],
    )
    // The change stands; the invoice was tried once and waits for its retries.
    expect(made.subscription.planId).toBe(annual)
    expect(invoice).toMatchObject({ status: "open", attempts: 1 })
  })
})
