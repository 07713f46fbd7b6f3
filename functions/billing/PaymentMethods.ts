import { Context, Effect, Layer, Schema } from "effect"
import { HttpApiError } from "effect/http-api"
import { Db } from "../../shared/Db.ts"
import * as Problem from "../../shared/Problem.ts"
import { type ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { unavailable } from "./Model.ts"
import { PaymentProvider, type ProviderName } from "./Provider.ts"

// A customer's saved payment method: one per customer (a PUT replaces it), saved at the provider from a client-side
// token (the card never reaches billing), and charged by the engine for the customer's invoices.

/** A client-side token of the provider (`tok_visa`, a Stripe PaymentMethod id `pm_…`): 1–255 visible characters. */
export const PaymentToken = Schema.String.check(
  Schema.isPattern(/^[\x21-\x7e]{1,255}$/, { message: "must be 1-255 visible ASCII characters" }),
)

/** What a customer sends: the provider's token for the method. */
export const NewPaymentMethod = Schema.Struct({ token: PaymentToken })
export type NewPaymentMethod = typeof NewPaymentMethod.Type

/** A saved payment method as the API shows it: whose provider, and what to show of the card. */
export const PaymentMethod = Schema.Struct({ provider: Schema.String, brand: Schema.String, last4: Schema.String })
export type PaymentMethod = typeof PaymentMethod.Type

/**
 * 402 payment_declined: the provider refused the payment method (`declineCode` says why, as the provider put it:
 * `card_declined`, `insufficient_funds`). 402 as Stripe answers a card error: the request was well formed, the money
 * side refused it; another method may succeed.
 */
export class PaymentDeclined extends HttpApiError.Problem<PaymentDeclined>()(
  "PaymentDeclined",
  { type: "urn:problem:payment_declined", status: 402, title: "Payment declined" },
  { code: Schema.tag("payment_declined"), declineCode: Schema.String },
) {}

/** The token the provider does not know: the caller's mistake, a 400 naming the field. */
const invalidToken = (reason: string) =>
  new ValidationFailed({
    detail: "The request does not match the API contract",
    errors: [{ path: "token", message: `is not a payment method token the provider accepts (${reason})` }],
  })

/** Customers' saved payment methods. */
export class PaymentMethods extends Context.Service<
  PaymentMethods,
  {
    /**
     * Saves `token` as `customerId`'s payment method at the provider and keeps it (replacing any earlier one): a token
     * the provider does not know is a 400, a refused one a 402, the provider unreachable a 503.
     */
    save(
      customerId: string,
      token: string,
    ): Effect.Effect<PaymentMethod, ValidationFailed | PaymentDeclined | ServiceUnavailable>
  }
>()("billing/PaymentMethods") {
  /** Payment methods over billing's `payment_methods` table and the configured provider. */
  static readonly layer = Layer.effect(
    PaymentMethods,
    Effect.gen(function* () {
      const db = yield* Db
      const provider = yield* PaymentProvider
      const table = `${db.schema}.payment_methods`

      const save = Effect.fn("PaymentMethods.save")(function* (customerId: string, token: string) {
        const saved = yield* provider.savePaymentMethod(customerId, token)
        if ("_tag" in saved) {
          switch (saved._tag) {
            case "invalid":
              return yield* invalidToken(saved.reason)
            case "declined":
              return yield* new PaymentDeclined({
                detail: "the provider declined this payment method; try another",
                declineCode: saved.reason,
              })
            case "unavailable":
              return yield* Problem.unavailable(
                "payment provider unavailable",
                "the payment provider is unavailable, retry later",
              )(saved.reason)
          }
        }
        yield* db
          .query(
            `INSERT INTO ${table} (customer_id, provider, customer_ref, payment_method_ref, brand, last4)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (customer_id) DO UPDATE SET provider = EXCLUDED.provider,
               customer_ref = EXCLUDED.customer_ref, payment_method_ref = EXCLUDED.payment_method_ref,
               brand = EXCLUDED.brand, last4 = EXCLUDED.last4, updated_at = now()`,
            [customerId, saved.provider, saved.customerRef, saved.paymentMethodRef, saved.brand, saved.last4],
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        return { provider: saved.provider satisfies ProviderName, brand: saved.brand, last4: saved.last4 }
      })

      return PaymentMethods.of({ save })
    }),
  )
}
