import { Context, type Effect } from "effect"

// The payment provider interface billing charges through: the built-in `test` provider (TestProvider.ts, the token
// decides the outcome) or Stripe (StripeProvider.ts). Amounts are integer minor units; every charge carries an
// idempotency key derived from the invoice and its attempt, so repeating an attempt is the same charge at the provider.

/** The providers billing can charge through; `test` is the built-in one. */
export const PROVIDERS = ["test", "stripe"] as const
export type ProviderName = (typeof PROVIDERS)[number]

/** A payment method saved from a client-side token: the provider's customer and method, and what to show of it. */
export interface SavedPaymentMethod {
  readonly provider: ProviderName
  readonly customerRef: string
  readonly paymentMethodRef: string
  readonly brand: string
  readonly last4: string
}

/** One charge of an invoice: `attempt` numbers its payment attempts from 1. */
export interface ChargeRequest {
  readonly invoiceId: string
  readonly attempt: number
  readonly amount: number
  readonly currency: string
  readonly customerRef: string
  readonly paymentMethodRef: string
}

/**
 * A charge's outcome. `declined`: the payment method was refused (retried on the dunning schedule, or paid with
 * another method); `unavailable`: the provider could not be reached or failed, nothing is known to be charged (the
 * same attempt is repeated with the same key).
 */
export type ChargeOutcome =
  | { readonly _tag: "paid"; readonly reference: string }
  | { readonly _tag: "declined"; readonly reason: string }
  | { readonly _tag: "unavailable"; readonly reason: string }

/**
 * A token that could not be saved: refused (`declined`), not a token the provider knows (`invalid`: the caller's
 * mistake, a 400), or the provider unreachable (`unavailable`).
 */
export type SaveFailure =
  | Exclude<ChargeOutcome, { readonly _tag: "paid" }>
  | { readonly _tag: "invalid"; readonly reason: string }

/** The idempotency key of an invoice's payment attempt: a retry of the attempt is the same charge. */
export const chargeKey = (invoiceId: string, attempt: number) => `billing-invoice-${invoiceId}-attempt-${attempt}`

/** The idempotency key of saving a token for an owner: the same token saved twice is one customer. */
export const saveKey = (ownerId: string, token: string) => `billing-payment-method-${ownerId}-${token}`

/** The provider billing charges through, chosen by BILLING_PAYMENT_PROVIDER. */
export class PaymentProvider extends Context.Service<
  PaymentProvider,
  {
    readonly name: ProviderName
    /** Saves a client-side token for `ownerId` (idempotent per owner and token). */
    savePaymentMethod(ownerId: string, token: string): Effect.Effect<SavedPaymentMethod | SaveFailure>
    /** Charges one attempt of an invoice under `chargeKey(invoiceId, attempt)`. */
    charge(request: ChargeRequest): Effect.Effect<ChargeOutcome>
  }
>()("billing/PaymentProvider") {}
