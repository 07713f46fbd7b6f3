// Billing's built-in `test` payment provider: the token decides the outcome, and a ledger in billing's own database
// (test_provider_charges, one row per idempotency key) behaves as a real provider's idempotency does: a charge
// repeated under the same key answers the first outcome and charges nothing more. Tests count charges in that table.
import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { Db } from "../../shared/Db.ts"
import {
  type ChargeOutcome,
  type ChargeRequest,
  chargeKey,
  PaymentProvider,
  type SavedPaymentMethod,
  type SaveFailure,
} from "./Provider.ts"

/** What a test token does: pay, or decline with a reason; and the card it shows (Stripe's test cards' last digits). */
interface TestCard {
  readonly outcome: { readonly _tag: "paid" } | { readonly _tag: "declined"; readonly reason: string }
  readonly brand: string
  readonly last4: string
}

/** The test provider's tokens; any other token is `invalid` (the caller's 400). */
export const TOKENS: Readonly<Record<string, TestCard>> = {
  tok_visa: { outcome: { _tag: "paid" }, brand: "visa", last4: "4242" },
  tok_declined: { outcome: { _tag: "declined", reason: "card_declined" }, brand: "visa", last4: "0002" },
  tok_insufficient_funds: {
    outcome: { _tag: "declined", reason: "insufficient_funds" },
    brand: "visa",
    last4: "9995",
  },
}

// A saved method's ref names its token, so a charge knows the outcome from what billing stored, with no other state.
const METHOD_PREFIX = "pm_test_"
const methodRef = (token: string) => `${METHOD_PREFIX}${token}`
const cardOf = (paymentMethodRef: string): TestCard | undefined =>
  paymentMethodRef.startsWith(METHOD_PREFIX)
    ? Object.hasOwn(TOKENS, paymentMethodRef.slice(METHOD_PREFIX.length))
      ? TOKENS[paymentMethodRef.slice(METHOD_PREFIX.length)]
      : undefined
    : undefined

type ChargeRow = {
  readonly customer_ref: string
  /** Null for a charge recorded before migration 0103. */
  readonly payment_method_ref: string | null
  readonly amount: string | number
  readonly currency: string
  readonly outcome: "paid" | "declined"
  readonly reason: string | null
  readonly reference: string
}

const outcomeOf = (row: ChargeRow): ChargeOutcome =>
  row.outcome === "paid"
    ? { _tag: "paid", reference: row.reference }
    : { _tag: "declined", reason: row.reason ?? "card_declined" }

/** The test provider over billing's database (its schema holds test_provider_charges). */
export const make = Effect.gen(function* () {
  const db = yield* Db
  const table = `${db.schema}.test_provider_charges`

  const savePaymentMethod = (ownerId: string, token: string): Effect.Effect<SavedPaymentMethod | SaveFailure> => {
    const card = Object.hasOwn(TOKENS, token) ? TOKENS[token] : undefined
    if (card === undefined) {
      return Effect.succeed({
        _tag: "invalid",
        reason: `unknown test token (use ${Object.keys(TOKENS).join(", ")})`,
      })
    }
    return Effect.succeed({
      provider: "test",
      customerRef: `cus_test_${ownerId}`,
      paymentMethodRef: methodRef(token),
      brand: card.brand,
      last4: card.last4,
    })
  }

  const charge = (request: ChargeRequest): Effect.Effect<ChargeOutcome> =>
    Effect.gen(function* () {
      const key = chargeKey(request.invoiceId, request.attempt)
      const card = cardOf(request.paymentMethodRef)
      const outcome = card?.outcome ?? { _tag: "declined" as const, reason: "unknown_payment_method" }
      // One row per key: the first charge under a key decides; a repeat reads what it decided.
      const inserted = yield* db.query<ChargeRow>(
        `INSERT INTO ${table}
           (idempotency_key, customer_ref, amount, currency, outcome, reason, reference, payment_method_ref)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING customer_ref, payment_method_ref, amount, currency, outcome, reason, reference`,
        [
          key,
          request.customerRef,
          request.amount,
          request.currency,
          outcome._tag,
          outcome._tag === "declined" ? outcome.reason : null,
          `ch_test_${randomUUID().replaceAll("-", "")}`,
          request.paymentMethodRef,
        ],
      )
      const row =
        inserted[0] ??
        (yield* db.query<ChargeRow>(
          `SELECT customer_ref, payment_method_ref, amount, currency, outcome, reason, reference FROM ${table}
           WHERE idempotency_key = $1`,
          [key],
        ))[0]
      if (row === undefined) return yield* Effect.die(new Error(`test provider: charge ${key} vanished`))
      // A key reused for another charge is our bug, as Stripe answers it with an idempotency error.
      if (
        Number(row.amount) !== request.amount ||
        row.currency !== request.currency ||
        row.customer_ref !== request.customerRef ||
        (row.payment_method_ref !== null && row.payment_method_ref !== request.paymentMethodRef)
      ) {
        return yield* Effect.die(
          new Error(
            `test provider: idempotency key ${key} reused with other parameters (amount, currency, customer or method)`,
          ),
        )
      }
      return outcomeOf(row)
    }).pipe(
      // The ledger unreachable is the provider unreachable: nothing is known to be charged, the attempt is repeated.
      Effect.catchTag("DbError", (error) =>
        Effect.succeed<ChargeOutcome>({ _tag: "unavailable", reason: `test provider: ${error.message}` }),
      ),
      Effect.withSpan("testProvider.charge"),
    )

  return PaymentProvider.of({ name: "test", savePaymentMethod, charge })
})

/** The test provider as billing's PaymentProvider. */
export const layer = Layer.effect(PaymentProvider, make)
