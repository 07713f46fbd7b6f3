import { Data, Effect, Schema } from "effect"
import { ValidationFailed } from "../../shared/Problem.ts"

/**
 * Money in billing is an integer count of the currency's minor units (cents for EUR, yen for JPY, fils for KWD), in
 * the API, the events and the database alike: no floating point ever holds an amount, so 0.1 + 0.2 is never a charge.
 */

/**
 * The currencies billing accepts, each with its ISO 4217 exponent (how many minor units make one major unit is
 * 10^exponent). Said once here: the schema, the formatting and the documentation follow.
 */
export const CURRENCIES = {
  EUR: 2,
  USD: 2,
  GBP: 2,
  CHF: 2,
  JPY: 0,
  KRW: 0,
  BHD: 3,
  JOD: 3,
  KWD: 3,
  OMR: 3,
  TND: 3,
} as const

export type Currency = keyof typeof CURRENCIES

const CODES = Object.keys(CURRENCIES) as Array<Currency>

/** A currency billing knows, by its ISO 4217 code in capitals; any other is a 400 naming the field. */
export const Currency = Schema.Literals(CODES).annotate({
  message: `must be one of ${CODES.join(", ")}`,
})

/**
 * The largest amount, in minor units, billing stores or computes: JavaScript numbers are exact integers only up to
 * 2^53 - 1, and Postgres keeps amounts as bigint (wider), so this bound is the narrower of the two.
 */
export const MAX_AMOUNT = Number.MAX_SAFE_INTEGER

/** An amount a caller gives (a plan's price): a whole, non-negative number of minor units within MAX_AMOUNT. */
export const Amount = Schema.Number.check(
  Schema.isInt({ message: "must be a whole number of the currency's minor units" }),
  Schema.isGreaterThanOrEqualTo(0, { message: "must not be negative" }),
  Schema.isLessThanOrEqualTo(MAX_AMOUNT, { message: `must be at most ${MAX_AMOUNT}` }),
)

/** A computed amount left the exact range: the request that led to it is refused, naming the field it came from. */
export class MoneyOverflow extends Data.TaggedError("MoneyOverflow")<{ readonly field: string }> {}

/** The 400 for an overflow: the field whose value made the amount too large, as a schema failure names its field. */
export const overflowProblem = (error: MoneyOverflow): ValidationFailed =>
  new ValidationFailed({
    detail: "The request does not match the API contract",
    errors: [{ path: error.field, message: `makes an amount beyond ${MAX_AMOUNT} minor units` }],
  })

const MAX = BigInt(MAX_AMOUNT)

/** An exact integer back to a number, refused (naming `field`) when its magnitude passes MAX_AMOUNT. */
const checked = (value: bigint, field: string): Effect.Effect<number, MoneyOverflow> =>
  value > MAX || value < -MAX ? Effect.fail(new MoneyOverflow({ field })) : Effect.succeed(Number(value))

/**
 * The one rounding rule of billing: numerator / denominator to the nearest integer, a tie to the even one (half-even,
 * "banker's rounding"), symmetric for negative values (a credit rounds as the charge it mirrors). Why half-even:
 * proration divides prices into many fractional amounts, and half-up would move every tie the same way, a bias that
 * adds up over a customer's invoices (and makes credit + charge of a plan change differ from the price); half-even
 * is unbiased. Exact in bigint, so no intermediate product loses a unit.
 */
export const divideRounded = (numerator: bigint, denominator: bigint): bigint => {
  if (denominator === 0n) throw new RangeError("divideRounded: a zero denominator")
  const negative = numerator < 0n !== denominator < 0n
  const n = numerator < 0n ? -numerator : numerator
  const d = denominator < 0n ? -denominator : denominator
  let quotient = n / d
  const twice = 2n * (n % d)
  if (twice > d || (twice === d && quotient % 2n === 1n)) quotient += 1n
  return negative ? -quotient : quotient
}

/**
 * `amount` × `numerator` / `denominator`, rounded by the one rule (a price over the used part of a period, in seconds):
 * the only way billing takes a fraction of an amount. Refused when the result passes MAX_AMOUNT.
 */
export const fraction = (
  amount: number,
  numerator: number,
  denominator: number,
  field = "amount",
): Effect.Effect<number, MoneyOverflow> =>
  checked(divideRounded(BigInt(amount) * BigInt(numerator), BigInt(denominator)), field)

/** `amount` × `quantity`, exact, refused naming `field` when it passes MAX_AMOUNT (an overflowing quantity is a 400). */
export const times = (amount: number, quantity: number, field = "quantity"): Effect.Effect<number, MoneyOverflow> =>
  checked(BigInt(amount) * BigInt(quantity), field)

/** The sum of amounts (an invoice's lines), exact, refused naming `field` when it passes MAX_AMOUNT. */
export const sum = (amounts: ReadonlyArray<number>, field = "total"): Effect.Effect<number, MoneyOverflow> =>
  checked(
    amounts.reduce((total, amount) => total + BigInt(amount), 0n),
    field,
  )

/** An amount in major units for people (a receipt): `1234` EUR is "12.34", JPY "1234", KWD `1234` is "1.234". */
export const format = (amount: number, currency: Currency): string => {
  const exponent = CURRENCIES[currency]
  const digits = Math.abs(amount)
    .toString()
    .padStart(exponent + 1, "0")
  const major = exponent === 0 ? digits : `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`
  return `${amount < 0 ? "-" : ""}${major}`
}
