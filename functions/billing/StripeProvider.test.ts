// Billing's Stripe provider against the real stripe-mock (infra/up.sh: STRIPE_API_BASE in .env.test). stripe-mock
// validates every request against Stripe's OpenAPI description but answers from canned fixtures: it keeps no state
// and cannot be made to decline or to succeed a PaymentIntent (a confirmed one always comes back
// `requires_payment_method`). So the calls, their parameters and their idempotency keys are tested against it, and
// the mapping of statuses and of the SDK's error types to outcomes is tested with the SDK's own types.
import { Effect, Exit, Option, Redacted } from "effect"
import Stripe from "stripe"
import { describe, expect, it } from "vitest"
import * as Provider from "./Provider.ts"
import * as StripeProvider from "./StripeProvider.ts"

const apiBase = process.env.STRIPE_API_BASE
if (!apiBase) throw new Error("STRIPE_API_BASE is not set: run infra/up.sh and load .env.test")
const secretKey = Redacted.make("sk_test_billingProvider42")

/** A provider on stripe-mock, and every request the SDK sent (method, path, idempotency key) and its answer's status. */
const onMock = (base = apiBase) => {
  const provider = StripeProvider.make({ secretKey, apiBase: Option.some(new URL(base)) })
  const sent: Array<{ method: string; path: string; idempotencyKey: string | undefined }> = []
  const answered: Array<{ path: string; status: number }> = []
  provider.client.on("request", (event: Stripe.RequestEvent) =>
    sent.push({ method: event.method, path: event.path, idempotencyKey: event.idempotency_key }),
  )
  provider.client.on("response", (event: Stripe.ResponseEvent) =>
    answered.push({ path: event.path, status: event.status }),
  )
  return { provider, sent, answered }
}

const request = (invoiceId: string, attempt: number): Provider.ChargeRequest => ({
  invoiceId,
  attempt,
  amount: 1999,
  currency: "EUR",
  customerRef: "cus_billing",
  paymentMethodRef: "pm_card_visa",
})

describe("StripeProvider configuration", () => {
  const base = { stripeSecretKey: Option.none(), stripeApiBase: Option.none() }

  it("needs no Stripe settings for the test provider", async () => {
    const got = await Effect.runPromise(StripeProvider.settings({ ...base, paymentProvider: "test" }))
    expect(Option.isNone(got)).toBe(true)
  })

  it("refuses stripe without STRIPE_SECRET_KEY, and a key that is not one, naming the key but never its value", async () => {
    const missing = await Effect.runPromiseExit(StripeProvider.settings({ ...base, paymentProvider: "stripe" }))
    expect(Exit.isFailure(missing)).toBe(true)
    expect(JSON.stringify(missing)).toContain("STRIPE_SECRET_KEY is required when BILLING_PAYMENT_PROVIDER=stripe")
    const wrong = await Effect.runPromiseExit(
      StripeProvider.settings({
        ...base,
        paymentProvider: "stripe",
        stripeSecretKey: Option.some(Redacted.make("pk_test_leak")),
      }),
    )
    expect(Exit.isFailure(wrong)).toBe(true)
    expect(JSON.stringify(wrong)).toContain("STRIPE_SECRET_KEY: expected a Stripe secret key")
    expect(JSON.stringify(wrong)).not.toContain("pk_test_leak")
  })

  it("accepts stripe with a secret key and the API base", async () => {
    const got = await Effect.runPromise(
      StripeProvider.settings({
        paymentProvider: "stripe",
        stripeSecretKey: Option.some(secretKey),
        stripeApiBase: Option.some(new URL(apiBase)),
      }),
    )
    expect(Option.map(got, (s) => s.apiBase.pipe(Option.map(String)))).toEqual(Option.some(Option.some(`${apiBase}/`)))
  })
})

describe("StripeProvider on stripe-mock", () => {
  it("saves a token as a customer with its default method, under the owner's and token's idempotency key", async () => {
    const { provider, sent } = onMock()
    const saved = await Effect.runPromise(provider.savePaymentMethod("user-1", "pm_card_visa"))
    expect(saved).toMatchObject({ provider: "stripe", paymentMethodRef: "pm_card_visa", brand: "visa", last4: "4242" })
    expect((saved as Provider.SavedPaymentMethod).customerRef).toMatch(/^cus_/)
    expect(sent[0]).toEqual({
      method: "POST",
      path: "/v1/customers",
      idempotencyKey: Provider.saveKey("user-1", "pm_card_visa"),
    })
  })

  it("creates and confirms one PaymentIntent per attempt, each call under the invoice's and attempt's key", async () => {
    const { provider, sent, answered } = onMock()
    const first = await Effect.runPromise(provider.charge(request("inv-7", 1)))
    const again = await Effect.runPromise(provider.charge(request("inv-7", 1)))
    await Effect.runPromise(provider.charge(request("inv-7", 2)))
    expect(sent.map((s) => [s.method, s.path, s.idempotencyKey])).toEqual([
      ["POST", "/v1/payment_intents", "billing-invoice-inv-7-attempt-1"],
      ["POST", "/v1/payment_intents", "billing-invoice-inv-7-attempt-1"],
      ["POST", "/v1/payment_intents", "billing-invoice-inv-7-attempt-2"],
    ])
    // stripe-mock accepted each request as valid (it answers 400 to parameters Stripe's API would refuse) ...
    expect(answered.map((a) => a.status)).toEqual([200, 200, 200])
    // ... and answers its canned intent, `requires_payment_method`: to billing, a decline.
    expect(first).toEqual({ _tag: "declined", reason: "requires_payment_method" })
    expect(again).toEqual(first)
  })

  it("is unavailable when Stripe cannot be reached, after the SDK's retries", async () => {
    const { provider, sent } = onMock("http://127.0.0.1:1")
    const got = await Effect.runPromise(provider.charge(request("inv-8", 1)))
    expect(got).toEqual({ _tag: "unavailable", reason: "StripeConnectionError" })
    // The SDK's own retries (maxNetworkRetries: 2) repeat the same key: a retry never becomes a second charge.
    expect(sent.length).toBe(3)
    expect(new Set(sent.map((s) => s.idempotencyKey))).toEqual(new Set(["billing-invoice-inv-8-attempt-1"]))
  })

  it("dies on a rejected key with the key masked in the message (stripe-mock quotes it)", async () => {
    const provider = StripeProvider.make({
      secretKey: Redacted.make("sk_test_not_mock_valid"),
      apiBase: Option.some(new URL(apiBase)),
    })
    const exit = await Effect.runPromiseExit(provider.charge(request("inv-10", 1)))
    expect(Exit.isFailure(exit) && Exit.hasDies(exit)).toBe(true)
    const text = String(Exit.isFailure(exit) ? exit.cause : "")
    expect(text).toContain("StripeAuthenticationError")
    expect(text).toContain("sk_test_[redacted]")
    expect(text).not.toContain("not_mock_valid")
  })

  it("dies on a request Stripe refuses as invalid (a defect of ours, not a decline), without the key in the message", async () => {
    const { provider } = onMock()
    const exit = await Effect.runPromiseExit(provider.charge({ ...request("inv-9", 1), amount: 1.5 }))
    expect(Exit.isFailure(exit) && Exit.hasDies(exit)).toBe(true)
    expect(String(JSON.stringify(exit))).not.toContain(Redacted.value(secretKey))
  })
})

describe("StripeProvider outcomes (what stripe-mock cannot simulate)", () => {
  it("maps PaymentIntent statuses", () => {
    const intent = (status: Stripe.PaymentIntent.Status, decline?: string) => ({
      id: "pi_1",
      status,
      last_payment_error:
        decline === undefined ? null : ({ decline_code: decline } as Stripe.PaymentIntent.LastPaymentError),
    })
    expect(StripeProvider.outcomeOfIntent(intent("succeeded"))).toEqual({ _tag: "paid", reference: "pi_1" })
    expect(StripeProvider.outcomeOfIntent(intent("requires_payment_method", "insufficient_funds"))).toEqual({
      _tag: "declined",
      reason: "insufficient_funds",
    })
    expect(StripeProvider.outcomeOfIntent(intent("requires_action"))).toEqual({
      _tag: "declined",
      reason: "authentication_required",
    })
    expect(StripeProvider.outcomeOfIntent(intent("processing"))).toEqual({ _tag: "unavailable", reason: "processing" })
  })

  it("maps the SDK's errors: card errors decline, outages are unavailable, the rest die", async () => {
    const run = (error: unknown) => Effect.runPromiseExit(StripeProvider.outcomeOfError(error))
    expect(
      await run(
        new Stripe.errors.StripeCardError({ type: "card_error", code: "card_declined", decline_code: "stolen_card" }),
      ),
    ).toEqual(Exit.succeed({ _tag: "declined", reason: "stolen_card" }))
    expect(await run(new Stripe.errors.StripeAPIError({ type: "api_error", message: "boom" }))).toEqual(
      Exit.succeed({ _tag: "unavailable", reason: "StripeAPIError" }),
    )
    expect(await run(new Stripe.errors.StripeRateLimitError({ type: "rate_limit_error" }))).toEqual(
      Exit.succeed({ _tag: "unavailable", reason: "StripeRateLimitError" }),
    )
    const auth = await run(
      new Stripe.errors.StripeAuthenticationError({ type: "authentication_error", message: "bad key" }),
    )
    expect(Exit.isFailure(auth) && Exit.hasDies(auth)).toBe(true)
    const reused = await run(new Stripe.errors.StripeIdempotencyError({ type: "idempotency_error" }))
    expect(Exit.isFailure(reused) && Exit.hasDies(reused)).toBe(true)
  })
})
