import { Effect, Exit, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { decode } from "../../shared/Problem.ts"
import {
  Amount,
  CURRENCIES,
  Currency,
  divideRounded,
  format,
  fraction,
  MAX_AMOUNT,
  MoneyOverflow,
  overflowProblem,
  sum,
  times,
} from "./Money.ts"

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(Effect.exit(effect))

/** The field errors a body gets, as the 400 lists them. */
const errorsOf = (body: unknown) => {
  const exit = run(decode(Schema.Struct({ amount: Amount, currency: Currency }))(body))
  if (Exit.isSuccess(exit)) return []
  const failure = exit.cause.reasons.find((reason) => reason._tag === "Fail")
  return failure && "error" in failure ? (failure.error as { errors: ReadonlyArray<{ path: string }> }).errors : []
}

describe("money", () => {
  it("knows each currency's ISO 4217 exponent", () => {
    expect(CURRENCIES).toMatchObject({ EUR: 2, USD: 2, GBP: 2, CHF: 2, JPY: 0, KRW: 0 })
    expect(CURRENCIES).toMatchObject({ KWD: 3, BHD: 3, JOD: 3, OMR: 3, TND: 3 })
  })

  it.each([
    [0, 0],
    [1, 0],
    [2, 1],
    [3, 2],
    [5, 2],
    [7, 4],
    [-1, 0],
    [-3, -2],
    [-5, -2],
    [-7, -4],
  ])("rounds %i / 2 half to even: %i", (n, expected) => {
    expect(divideRounded(BigInt(n), 2n)).toBe(BigInt(expected))
  })

  it("rounds anything but a tie to the nearest, by sign, and refuses a zero denominator", () => {
    expect(divideRounded(10n, 3n)).toBe(3n)
    expect(divideRounded(20n, 3n)).toBe(7n)
    expect(divideRounded(-20n, 3n)).toBe(-7n)
    expect(divideRounded(20n, -3n)).toBe(-7n)
    expect(() => divideRounded(1n, 0n)).toThrow(RangeError)
  })

  it("takes a fraction of a price exactly past 2^53 in between: half a month of the largest amount", () => {
    // amount × numerator passes 2^53 long before the result does: bigint keeps it exact.
    expect(run(fraction(MAX_AMOUNT, 1_296_000, 2_592_000))).toEqual(Exit.succeed(4_503_599_627_370_496))
    expect(run(fraction(999, 1, 2))).toEqual(Exit.succeed(500)) // 499.5 → 500 (even)
    expect(run(fraction(997, 1, 2))).toEqual(Exit.succeed(498)) // 498.5 → 498 (even)
    expect(run(fraction(1000, 1, 3))).toEqual(Exit.succeed(333))
    expect(run(fraction(-1000, 2, 3))).toEqual(Exit.succeed(-667))
  })

  it("refuses a product, a sum or a fraction beyond MAX_AMOUNT, naming the field", () => {
    expect(run(times(MAX_AMOUNT, 1))).toEqual(Exit.succeed(MAX_AMOUNT))
    expect(run(times(MAX_AMOUNT, 2))).toEqual(Exit.fail(new MoneyOverflow({ field: "quantity" })))
    expect(run(times(-MAX_AMOUNT, 2, "lines.0.quantity"))).toEqual(
      Exit.fail(new MoneyOverflow({ field: "lines.0.quantity" })),
    )
    expect(run(sum([MAX_AMOUNT - 1, 1]))).toEqual(Exit.succeed(MAX_AMOUNT))
    expect(run(sum([MAX_AMOUNT, 1]))).toEqual(Exit.fail(new MoneyOverflow({ field: "total" })))
    expect(run(fraction(MAX_AMOUNT, 3, 2))).toEqual(Exit.fail(new MoneyOverflow({ field: "amount" })))
    expect(overflowProblem(new MoneyOverflow({ field: "quantity" })).errors).toEqual([
      { path: "quantity", message: `makes an amount beyond ${MAX_AMOUNT} minor units` },
    ])
  })

  it("takes a whole, non-negative amount in a known currency", () => {
    expect(errorsOf({ amount: 0, currency: "JPY" })).toEqual([])
    expect(errorsOf({ amount: MAX_AMOUNT, currency: "KWD" })).toEqual([])
  })

  it.each([
    ["a negative amount", "amount", { amount: -1, currency: "EUR" }],
    ["a fraction of a minor unit", "amount", { amount: 12.5, currency: "EUR" }],
    ["an amount past 2^53 - 1", "amount", { amount: MAX_AMOUNT + 1, currency: "EUR" }],
    ["an amount as a string", "amount", { amount: "100", currency: "EUR" }],
    ["an unknown currency", "currency", { amount: 100, currency: "XXX" }],
    ["a currency in lower case", "currency", { amount: 100, currency: "eur" }],
  ])("refuses %s, naming %s", (_case, field, body) => {
    // Only that field (a value may break more than one of its rules: 2^53 is neither safe nor within the bound).
    expect(new Set(errorsOf(body).map((error) => error.path))).toEqual(new Set([field]))
  })

  it.each([
    [1234, "EUR", "12.34"],
    [5, "USD", "0.05"],
    [-5, "CHF", "-0.05"],
    [1234, "JPY", "1234"],
    [1234, "KWD", "1.234"],
    [7, "TND", "0.007"],
  ] as const)("formats %i %s as %s", (amount, currency, text) => {
    expect(format(amount, currency)).toBe(text)
  })
})
