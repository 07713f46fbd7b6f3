// The payment provider billing charges through, chosen at start by BILLING_PAYMENT_PROVIDER (StripeProvider.config,
// spread into billing's configuration): the built-in `test` provider, or Stripe with its checked settings.
import { Effect, Layer, Option } from "effect"
import Stripe from "stripe"
import { PaymentProvider, type SavedPaymentMethod, type SaveFailure } from "./Provider.ts"
import * as StripeProvider from "./StripeProvider.ts"
import * as TestProvider from "./TestProvider.ts"

/**
 * Whether Stripe refused a token as one it does not know (a PaymentMethod that does not exist, or a malformed id):
 * the caller's mistake, a 400, not a defect of ours. Real Stripe answers it as an invalid request about the
 * `payment_method` parameter (code `resource_missing` when retrieving it).
 */
export const isUnknownToken = (error: unknown): boolean =>
  error instanceof Stripe.errors.StripeInvalidRequestError &&
  (error.code === "resource_missing" || error.param === "payment_method")

/**
 * Stripe as billing's provider: StripeProvider's calls, and a token checked first (retrieved as a PaymentMethod), so
 * a token Stripe does not know is `invalid` instead of a defect of the customer creation that would follow.
 */
export const stripe = (settings: StripeProvider.StripeSettings, options: { readonly client?: Stripe } = {}) => {
  const provider = StripeProvider.make(settings, options)
  const savePaymentMethod = (ownerId: string, token: string): Effect.Effect<SavedPaymentMethod | SaveFailure> =>
    Effect.tryPromise({ try: () => provider.client.paymentMethods.retrieve(token), catch: (error) => error }).pipe(
      Effect.withSpan("stripe.paymentMethods.check"),
      Effect.matchEffect({
        onFailure: (error): Effect.Effect<SavedPaymentMethod | SaveFailure> =>
          isUnknownToken(error)
            ? Effect.succeed({ _tag: "invalid", reason: "unknown payment method token" })
            : StripeProvider.outcomeOfError(error),
        onSuccess: () => provider.savePaymentMethod(ownerId, token),
      }),
    )
  return { ...provider, savePaymentMethod }
}

/** PaymentProvider from billing's configuration: `test` over billing's database, or Stripe (settings checked). */
export const layer = (config: StripeProvider.StripeConfig) =>
  Layer.unwrap(
    Effect.map(StripeProvider.settings(config), (settings) =>
      Option.match(settings, {
        onNone: () => TestProvider.layer,
        onSome: (settings) => Layer.succeed(PaymentProvider, PaymentProvider.of(stripe(settings))),
      }),
    ),
  )
