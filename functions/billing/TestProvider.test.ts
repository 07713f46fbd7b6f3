// The built-in test provider and the provider choice, on the real Postgres and on the embedded PGlite server of
// `npm start`: tokens decide outcomes, one ledger row per idempotency key (a repeated charge answers the first
// outcome and charges nothing more, also when repeated concurrently), and Stripe's unknown token is `invalid`.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Layer, Option, Redacted } from "effect"
import Stripe from "stripe"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startEmbeddedPostgres } from "../../infra/embedded/postgres.ts"
import { Db } from "../../shared/Db.ts"
import { type Running, start } from "../../shared/testing/harness.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { type ChargeRequest, chargeKey, PaymentProvider, type SavedPaymentMethod } from "./Provider.ts"
import * as Providers from "./Providers.ts"
import { billingDb, billingDbOptions, runWith } from "./testing/engineDb.ts"

const request = (invoiceId: string, method: SavedPaymentMethod, attempt = 1): ChargeRequest => ({
  invoiceId,
  attempt,
  amount: 1999,
  currency: "EUR",
  customerRef: method.customerRef,
  paymentMethodRef: method.paymentMethodRef,
})

const testProviderCases = (url: () => string | undefined) => {
  let running: Running<Db | PaymentProvider>
  const run = <A, E>(effect: Effect.Effect<A, E, Db | PaymentProvider>) => runWith(running.context)(effect)
  beforeAll(async () => {
    const config = { paymentProvider: "test" as const, stripeSecretKey: Option.none(), stripeApiBase: Option.none() }
    running = await start(Providers.layer(config).pipe(Layer.provideMerge(billingDb(billingDbOptions(url())))))
  }, 60_000)
  afterAll(() => running?.close())

  const save = (token: string) =>
    run(Effect.flatMap(Effect.service(PaymentProvider), (p) => p.savePaymentMethod("owner-1", token)))
  const charge = (req: ChargeRequest) => run(Effect.flatMap(Effect.service(PaymentProvider), (p) => p.charge(req)))
  const ledger = (invoiceId: string) =>
    run(
      Effect.flatMap(Effect.service(Db), (db) =>
        db.query<{ idempotency_key: string; outcome: string; reason: string | null }>(
          `SELECT idempotency_key, outcome, reason FROM ${db.schema}.test_provider_charges
           WHERE idempotency_key LIKE $1 ORDER BY idempotency_key`,
          [`billing-invoice-${invoiceId}-%`],
        ),
      ),
    )

  it("is the provider named test", async () => {
    expect(await run(Effect.map(Effect.service(PaymentProvider), (p) => p.name))).toBe("test")
  })

  it("saves the test tokens with a brand and last four digits, and refuses any other token as invalid", async () => {
    expect(await save("tok_visa")).toEqual({
      provider: "test",
      customerRef: "cus_test_owner-1",
      paymentMethodRef: "pm_test_tok_visa",
      brand: "visa",
      last4: "4242",
    })
    expect(await save("tok_declined")).toMatchObject({ brand: "visa", last4: "0002" })
    expect(await save("tok_insufficient_funds")).toMatchObject({ brand: "visa", last4: "9995" })
    for (const token of ["tok_unknown", "", "toString", "__proto__", "pm_test_tok_visa"]) {
      expect(await save(token)).toMatchObject({ _tag: "invalid" })
    }
  })

  it("pays with tok_visa and declines tok_declined and tok_insufficient_funds with their reasons", async () => {
    const visa = (await save("tok_visa")) as SavedPaymentMethod
    const paid = await charge(request("inv-visa", visa))
    expect(paid._tag).toBe("paid")
    expect(paid._tag === "paid" && paid.reference).toMatch(/^ch_test_/)
    expect(await charge(request("inv-declined", (await save("tok_declined")) as SavedPaymentMethod))).toEqual({
      _tag: "declined",
      reason: "card_declined",
    })
    expect(await charge(request("inv-funds", (await save("tok_insufficient_funds")) as SavedPaymentMethod))).toEqual({
      _tag: "declined",
      reason: "insufficient_funds",
    })
    expect(await charge({ ...request("inv-unknown", visa), paymentMethodRef: "pm_other" })).toEqual({
      _tag: "declined",
      reason: "unknown_payment_method",
    })
  })

  it("answers a repeated key with its first outcome and charges nothing more, also when repeated concurrently", async () => {
    const visa = (await save("tok_visa")) as SavedPaymentMethod
    const declined = (await save("tok_declined")) as SavedPaymentMethod
    const first = await charge(request("inv-repeat", visa))
    // The same attempt again: the key decided it already.
    const again = await charge(request("inv-repeat", visa))
    expect(again).toEqual(first)
    const burst = await Promise.all(Array.from({ length: 20 }, () => charge(request("inv-burst", visa))))
    expect(new Set(burst.map((o) => JSON.stringify(o))).size).toBe(1)
    expect(await ledger("inv-burst")).toEqual([
      { idempotency_key: chargeKey("inv-burst", 1), outcome: "paid", reason: null },
    ])
    // A new attempt is a new key: a new charge.
    expect(await charge(request("inv-repeat", declined, 2))).toEqual({ _tag: "declined", reason: "card_declined" })
    expect((await ledger("inv-repeat")).map((r) => [r.idempotency_key, r.outcome])).toEqual([
      [chargeKey("inv-repeat", 1), "paid"],
      [chargeKey("inv-repeat", 2), "declined"],
    ])
  })

  it("dies when a key is reused for another amount or method (an idempotency error, as Stripe's; a bug of ours)", async () => {
    const visa = (await save("tok_visa")) as SavedPaymentMethod
    const declined = (await save("tok_declined")) as SavedPaymentMethod
    await charge(request("inv-reused", visa))
    for (const reused of [{ ...request("inv-reused", visa), amount: 1 }, request("inv-reused", declined)]) {
      const exit = await Effect.runPromiseExit(
        Effect.provideContext(
          Effect.flatMap(Effect.service(PaymentProvider), (p) => p.charge(reused)),
          running.context,
        ),
      )
      expect(Exit.isFailure(exit) && Exit.hasDies(exit)).toBe(true)
    }
  })
}

describe("TestProvider (real Postgres)", () => testProviderCases(() => undefined))

describe("TestProvider (the embedded PGlite server of npm start)", () => {
  const dir = mkdtempSync(join(tmpdir(), "billing-provider-pglite-"))
  let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined
  beforeAll(async () => {
    embedded = await startEmbeddedPostgres(join(dir, "data"), await freePort())
  }, 60_000)
  afterAll(async () => {
    await embedded?.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  testProviderCases(() => embedded!.url)
})

describe("TestProvider when its ledger is unreachable", () => {
  it("answers unavailable (nothing is known to be charged)", async () => {
    const options = { ...billingDbOptions(), url: Redacted.make("postgres://nobody@127.0.0.1:1/none") }
    const running = await start(
      Providers.layer({ paymentProvider: "test", stripeSecretKey: Option.none(), stripeApiBase: Option.none() }).pipe(
        Layer.provideMerge(Db.layer(options)),
      ),
    )
    try {
      const got = await runWith(running.context)(
        Effect.flatMap(Effect.service(PaymentProvider), (p) =>
          p.charge({
            invoiceId: "inv-down",
            attempt: 1,
            amount: 100,
            currency: "EUR",
            customerRef: "cus_test_x",
            paymentMethodRef: "pm_test_tok_visa",
          }),
        ),
      )
      expect(got._tag).toBe("unavailable")
    } finally {
      await running.close()
    }
  })
})

describe("Providers: Stripe chosen by configuration (stripe-mock)", () => {
  const apiBase = process.env.STRIPE_API_BASE
  if (!apiBase) throw new Error("STRIPE_API_BASE is not set: run infra/up.sh and load .env.test")
  const config = {
    paymentProvider: "stripe" as const,
    stripeSecretKey: Option.some(Redacted.make("sk_test_billingProviders42")),
    stripeApiBase: Option.some(new URL(apiBase)),
  }

  it("builds the Stripe provider, which saves a token stripe-mock knows", async () => {
    const running = await start(Providers.layer(config).pipe(Layer.provide(billingDb(billingDbOptions()))))
    try {
      const provider = await runWith(running.context)(Effect.service(PaymentProvider))
      expect(provider.name).toBe("stripe")
      expect(await Effect.runPromise(provider.savePaymentMethod("owner-2", "pm_card_visa"))).toMatchObject({
        provider: "stripe",
        brand: "visa",
        last4: "4242",
      })
    } finally {
      await running.close()
    }
  })

  it("refuses stripe without a secret key at start", async () => {
    const exit = await Effect.runPromiseExit(
      Layer.build(
        Providers.layer({ ...config, stripeSecretKey: Option.none() }).pipe(
          Layer.provide(Db.layer(billingDbOptions())),
        ),
      ).pipe(Effect.scoped),
    )
    expect(Exit.isFailure(exit)).toBe(true)
    expect(JSON.stringify(exit)).toContain("STRIPE_SECRET_KEY is required")
  })

  // stripe-mock knows every token (it answers fixtures): Stripe's answer to an unknown one is given by a client whose
  // retrieve throws what the SDK throws for it.
  it("maps Stripe's unknown token to invalid before creating any customer", async () => {
    const client = new Stripe("sk_test_billingProviders42", {
      protocol: "http",
      host: new URL(apiBase).hostname,
      port: Number(new URL(apiBase).port),
    })
    const created: Array<string> = []
    client.on("request", (event: Stripe.RequestEvent) => created.push(`${event.method} ${event.path}`))
    const missing = new Stripe.errors.StripeInvalidRequestError({
      type: "invalid_request_error",
      code: "resource_missing",
      param: "payment_method",
      message: "No such PaymentMethod: 'tok_nope'",
    })
    client.paymentMethods.retrieve = (() => Promise.reject(missing)) as typeof client.paymentMethods.retrieve
    const provider = Providers.stripe(
      { secretKey: Redacted.make("sk_test_billingProviders42"), apiBase: Option.some(new URL(apiBase)) },
      { client },
    )
    expect(await Effect.runPromise(provider.savePaymentMethod("owner-3", "tok_nope"))).toEqual({
      _tag: "invalid",
      reason: "unknown payment method token",
    })
    expect(created).toEqual([])
    expect(Providers.isUnknownToken(missing)).toBe(true)
    expect(Providers.isUnknownToken(new Stripe.errors.StripeAPIError({ type: "api_error" }))).toBe(false)
  })
})
