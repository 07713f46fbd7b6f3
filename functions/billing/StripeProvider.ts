// Billing's Stripe payment provider: the official `stripe` SDK, pointed at STRIPE_API_BASE when set (stripe-mock in the
// tests, infra/up.sh), with STRIPE_SECRET_KEY. Every call that can move money carries an idempotency key derived from
// what it is for (the invoice and its attempt), so a retried call — ours, or the SDK's own network retry — is the same
// call to Stripe and never charges twice.
import { Config, Effect, Option, Redacted } from "effect"
import Stripe from "stripe"
import { ConfigInvalid } from "../../shared/Config.ts"
import {
  type ChargeOutcome,
  type ChargeRequest,
  chargeKey,
  PROVIDERS,
  type ProviderName,
  type SavedPaymentMethod,
  type SaveFailure,
  saveKey,
} from "./Provider.ts"

/** The payment keys of billing's configuration, spread into it and read at start with its others. */
export const config = {
  paymentProvider: Config.Literals(PROVIDERS, "BILLING_PAYMENT_PROVIDER").pipe(Config.withDefault("test" as const)),
  stripeSecretKey: Config.option(Config.Redacted("STRIPE_SECRET_KEY")),
  /** Stripe's API origin; unset is Stripe itself (https://api.stripe.com). */
  stripeApiBase: Config.option(Config.URL("STRIPE_API_BASE")),
}

export interface StripeConfig {
  readonly paymentProvider: ProviderName
  readonly stripeSecretKey: Option.Option<Redacted.Redacted<string>>
  readonly stripeApiBase: Option.Option<URL>
}

/** What the Stripe provider needs, once the choice of provider has been checked against the keys it needs. */
export interface StripeSettings {
  readonly secretKey: Redacted.Redacted<string>
  readonly apiBase: Option.Option<URL>
}

/**
 * The Stripe settings when `stripe` is the chosen provider (none for `test`). Checked at start: `stripe` without
 * STRIPE_SECRET_KEY, or a key that is not a Stripe secret or restricted key, is a configuration problem naming the key
 * (never its value).
 */
export const settings = (config: StripeConfig): Effect.Effect<Option.Option<StripeSettings>, ConfigInvalid> => {
  if (config.paymentProvider !== "stripe") return Effect.succeed(Option.none())
  if (Option.isNone(config.stripeSecretKey)) {
    return Effect.fail(
      new ConfigInvalid({ problems: ["STRIPE_SECRET_KEY is required when BILLING_PAYMENT_PROVIDER=stripe"] }),
    )
  }
  const secretKey = config.stripeSecretKey.value
  if (!/^(sk|rk)_(test|live)_\w+$/.test(Redacted.value(secretKey))) {
    return Effect.fail(
      new ConfigInvalid({ problems: ["STRIPE_SECRET_KEY: expected a Stripe secret key (sk_test_…, sk_live_…, rk_…)"] }),
    )
  }
  return Effect.succeed(Option.some({ secretKey, apiBase: config.stripeApiBase }))
}

/** API keys in a message (stripe-mock quotes the whole Authorization header in its 401's message). */
const API_KEYS = /\b(sk|rk|pk)_(test|live)_\w+/g

/**
 * Maps what the SDK threw to an outcome. A card error is a decline; a connection failure, Stripe's own 5xx and rate
 * limiting are `unavailable`. Anything else (a bad key, an invalid request, an idempotency key reused with other
 * parameters) is a defect of ours or of the configuration that no retry mends: it dies with the SDK's message, any API
 * key in it masked.
 */
export const outcomeOfError = (error: unknown): Effect.Effect<Exclude<SaveFailure, { readonly _tag: "invalid" }>> => {
  if (error instanceof Stripe.errors.StripeCardError) {
    return Effect.succeed({ _tag: "declined", reason: error.decline_code ?? error.code ?? "card_declined" })
  }
  if (
    error instanceof Stripe.errors.StripeConnectionError ||
    error instanceof Stripe.errors.StripeAPIError ||
    error instanceof Stripe.errors.StripeRateLimitError
  ) {
    return Effect.succeed({ _tag: "unavailable", reason: error.type })
  }
  if (error instanceof Stripe.errors.StripeError) {
    const message = error.message.replace(API_KEYS, "$1_$2_[redacted]")
    return Effect.die(new Error(`Stripe refused a billing call (${error.type}, HTTP ${error.statusCode}): ${message}`))
  }
  return Effect.die(error)
}

/**
 * Maps a confirmed PaymentIntent's status to an outcome. Charges are off-session (renewals run with no customer
 * present), so an intent that needs the customer (`requires_action`, 3-D Secure) or a new method is a decline;
 * `processing` is not known to be paid, so it is `unavailable` and the same attempt (same key) asks again.
 */
export const outcomeOfIntent = (
  intent: Pick<Stripe.PaymentIntent, "id" | "status" | "last_payment_error">,
): ChargeOutcome => {
  switch (intent.status) {
    case "succeeded":
      return { _tag: "paid", reference: intent.id }
    case "processing":
      return { _tag: "unavailable", reason: "processing" }
    case "requires_action":
      return { _tag: "declined", reason: "authentication_required" }
    default:
      return {
        _tag: "declined",
        reason: intent.last_payment_error?.decline_code ?? intent.last_payment_error?.code ?? intent.status,
      }
  }
}

/** The Stripe provider over one SDK client. */
export const make = (settings: StripeSettings, options: { readonly client?: Stripe } = {}) => {
  const client =
    options.client ??
    new Stripe(Redacted.value(settings.secretKey), {
      // The SDK retries network failures and 5xx with the same idempotency key: a retry is the same call.
      maxNetworkRetries: 2,
      timeout: 20_000,
      telemetry: false,
      ...Option.match(settings.apiBase, {
        onNone: () => ({}),
        onSome: (base) => ({
          protocol: base.protocol === "http:" ? ("http" as const) : ("https" as const),
          host: base.hostname,
          port: base.port === "" ? (base.protocol === "http:" ? 80 : 443) : Number(base.port),
        }),
      }),
    })

  const call = <A>(what: string, f: () => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (error) => error }).pipe(
      Effect.withSpan(`stripe.${what}`),
      Effect.map((value) => ({ _tag: "ok" as const, value })),
      Effect.catch((error) => outcomeOfError(error)),
    )

  return {
    name: "stripe" as const,
    client,
    /**
     * Saves a client-side token (a PaymentMethod id such as `pm_card_visa`) for an owner: a Stripe customer with it as
     * the default method, made once per owner and token (idempotency key), and the card's brand and last four digits.
     */
    savePaymentMethod: (ownerId: string, token: string): Effect.Effect<SavedPaymentMethod | SaveFailure> =>
      Effect.gen(function* () {
        const customer = yield* call("customers.create", () =>
          client.customers.create(
            {
              payment_method: token,
              invoice_settings: { default_payment_method: token },
              metadata: { owner_id: ownerId },
            },
            { idempotencyKey: saveKey(ownerId, token) },
          ),
        )
        if (customer._tag !== "ok") return customer
        const method = yield* call("paymentMethods.retrieve", () => client.paymentMethods.retrieve(token))
        if (method._tag !== "ok") return method
        return {
          provider: "stripe" as const,
          customerRef: customer.value.id,
          paymentMethodRef: method.value.id,
          brand: method.value.card?.brand ?? method.value.type,
          last4: method.value.card?.last4 ?? "",
        }
      }),
    /**
     * Charges an invoice's attempt: one PaymentIntent created and confirmed off-session in one call, under the
     * attempt's idempotency key, so repeating the attempt (a crash before its outcome was stored) is the same intent.
     */
    charge: (request: ChargeRequest): Effect.Effect<ChargeOutcome> =>
      call("paymentIntents.create", () =>
        client.paymentIntents.create(
          {
            amount: request.amount,
            currency: request.currency.toLowerCase(),
            customer: request.customerRef,
            payment_method: request.paymentMethodRef,
            confirm: true,
            off_session: true,
            metadata: { invoice_id: request.invoiceId, attempt: String(request.attempt) },
          },
          { idempotencyKey: chargeKey(request.invoiceId, request.attempt) },
        ),
      ).pipe(Effect.map((result) => (result._tag === "ok" ? outcomeOfIntent(result.value) : result))),
  }
}

export type StripeProvider = ReturnType<typeof make>
