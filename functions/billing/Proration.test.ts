import { Effect, Exit } from "effect"
import { describe, expect, it } from "vitest"
import type { IntervalUnit } from "./Model.ts"
import type { Currency } from "./Money.ts"
import type { Period } from "./Periods.ts"
import { CurrencyMismatch, OutsidePeriod, type PricedPlan, type Proration, prorate } from "./Proration.ts"

const d = (iso: string) => new Date(iso)
const plan = (
  name: string,
  amount: number,
  currency: Currency = "EUR",
  interval: IntervalUnit = "month",
  count = 1,
): PricedPlan => ({ name, amount, currency, interval, intervalCount: count })

// January 2027: 31 days, 2,678,400 seconds.
const JANUARY: Period = { start: d("2027-01-01T00:00:00Z"), end: d("2027-02-01T00:00:00Z") }
const basic = plan("Basic", 1000)
const pro = plan("Pro", 3000)
const premium = plan("Premium", 5000)

const run = (from: PricedPlan, to: PricedPlan, at: Date, period = JANUARY) =>
  Effect.runSync(prorate({ period, from, to, at }))

/** Lines as [description, amount, periodStart, periodEnd] for compact expectations. */
const shown = (proration: Proration) =>
  proration.lines.map((line) => [
    line.description,
    line.amount,
    line.periodStart.toISOString(),
    line.periodEnd.toISOString(),
  ])

const END = "2027-02-01T00:00:00.000Z"

describe("proration", () => {
  // [case, from, to, at, credit, charge, total]: amounts by hand, price × seconds left / 2,678,400, half-even.
  it.each([
    // 16 days left of 31: 1000 × 16/31 = 516.13, 3000 × 16/31 = 1548.39.
    ["upgrade", basic, pro, "2027-01-16T00:00:00Z", -516, 1548, 1032],
    ["downgrade", pro, basic, "2027-01-16T00:00:00Z", -1548, 516, -1032],
    // The first second: the whole period is unused.
    ["first second", basic, pro, "2027-01-01T00:00:00Z", -1000, 3000, 2000],
    // A fraction of a second does not count: 00:00:00.999 is the first second still.
    ["first second, with milliseconds", basic, pro, "2027-01-01T00:00:00.999Z", -1000, 3000, 2000],
    // JPY has no minor unit: 20.5 days left, 980 × 0.66129 = 648.06, 1980 × 0.66129 = 1309.35.
    ["JPY (exponent 0)", plan("Lite", 980, "JPY"), plan("Plus", 1980, "JPY"), "2027-01-11T12:00:00Z", -648, 1309, 661],
    // KWD has three decimals: 926,985 s left, 4.500 KWD → 1.557, 12.750 KWD → 4.413.
    ["KWD (exponent 3)", plan("S", 4500, "KWD"), plan("L", 12750, "KWD"), "2027-01-21T06:30:15Z", -1557, 4413, 2856],
  ] as const)("%s", (_, from, to, at, credit, charge, total) => {
    const proration = run(from, to, d(at))
    const start = d(at).toISOString()
    expect(shown(proration)).toEqual([
      [`Unused time on ${from.name} after ${at.slice(0, 19)}Z`, credit, start, END],
      [`Remaining time on ${to.name} after ${at.slice(0, 19)}Z`, charge, start, END],
    ])
    expect(proration.total).toBe(total)
    expect(proration.currency).toBe(from.currency)
    expect(proration.newPeriod).toBeNull()
  })

  it("prorates the last second: one second's price, half-even (0.5 → 0, 1.5 → 2), zero lines left out", () => {
    const at = d("2027-01-31T23:59:59Z")
    // 1,339,200 / 2,678,400 = 0.5 → 0 (even); 4,017,600 / 2,678,400 = 1.5 → 2 (even); 5,356,800 → exactly 2.
    const half = plan("Half", 1_339_200)
    const threeHalves = plan("ThreeHalves", 4_017_600)
    const two = plan("Two", 5_356_800)
    expect(shown(run(threeHalves, two, at))).toEqual([
      ["Unused time on ThreeHalves after 2027-01-31T23:59:59Z", -2, at.toISOString(), END],
      ["Remaining time on Two after 2027-01-31T23:59:59Z", 2, at.toISOString(), END],
    ])
    expect(run(threeHalves, two, at).total).toBe(0)
    expect(shown(run(half, two, at))).toEqual([
      ["Remaining time on Two after 2027-01-31T23:59:59Z", 2, at.toISOString(), END],
    ])
    // Ordinary prices round to nothing in the last second: no lines, nothing to pay.
    expect(run(basic, pro, at)).toMatchObject({ lines: [], total: 0 })
    // From a free plan: no credit line.
    expect(shown(run(plan("Free", 0), pro, d("2027-01-16T00:00:00Z")))).toEqual([
      ["Remaining time on Pro after 2027-01-16T00:00:00Z", 1548, "2027-01-16T00:00:00.000Z", END],
    ])
  })

  it("bills a same-day second change against the plan of the first: never twice", () => {
    // Basic → Pro at 10:00, then Pro → Premium at 15:00 the same day.
    const first = run(basic, pro, d("2027-01-16T10:00:00Z"))
    const second = run(pro, premium, d("2027-01-16T15:00:00Z"))
    // 1,346,400 s then 1,328,400 s left of 2,678,400.
    expect(first.lines.map((line) => line.amount)).toEqual([-503, 1508])
    expect(second.lines.map((line) => line.description)).toEqual([
      "Unused time on Pro after 2027-01-16T15:00:00Z",
      "Remaining time on Premium after 2027-01-16T15:00:00Z",
    ])
    expect(second.lines.map((line) => line.amount)).toEqual([-1488, 2480])
    // Basic until 10:00 (paid in advance), Pro for 5 h, Premium for the rest: Premium's rest beyond Basic's
    // (1983.87) plus Pro's 5 h beyond Basic's (13.44): 1997.31, within a unit of rounding per line.
    expect(first.total + second.total).toBe(1997)
    // A change undone in the same second nets to exactly nothing.
    const at = d("2027-01-20T08:15:00Z")
    expect(run(basic, pro, at).total + run(pro, basic, at).total).toBe(0)
  })

  it("resets the billing cycle on another interval: the new plan's full period from the change, less the credit", () => {
    const annual = plan("Annual", 10_000, "EUR", "year")
    const proration = run(basic, annual, d("2027-01-16T00:00:00Z"))
    expect(shown(proration)).toEqual([
      ["Unused time on Basic after 2027-01-16T00:00:00Z", -516, "2027-01-16T00:00:00.000Z", END],
      [
        "Annual from 2027-01-16T00:00:00Z to 2028-01-16T00:00:00Z",
        10_000,
        "2027-01-16T00:00:00.000Z",
        "2028-01-16T00:00:00.000Z",
      ],
    ])
    expect(proration.total).toBe(9484)
    expect(proration.newPeriod).toEqual({ start: d("2027-01-16T00:00:00Z"), end: d("2028-01-16T00:00:00Z") })
    // Another count of the same unit is another interval too (monthly → quarterly), from the month's end clamped.
    const quarterly = plan("Quarterly", 2700, "EUR", "month", 3)
    const reset = run(basic, quarterly, d("2027-01-31T12:00:00Z"))
    expect(reset.newPeriod?.end.toISOString()).toBe("2027-04-30T12:00:00.000Z")
    // Back from a year to a month: the year's unused part is credited (a net credit for the next invoice).
    const back = run(annual, basic, d("2027-01-16T00:00:00Z"), proration.newPeriod ?? JANUARY)
    expect(back.lines.map((line) => line.amount)).toEqual([-10_000, 1000])
    expect(back.total).toBe(-9000)
  })

  it("refuses another currency and a time outside the period, as typed errors", () => {
    const failure = (exit: Exit.Exit<unknown, unknown>) =>
      Exit.isFailure(exit) ? exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error : r)) : []
    const at = d("2027-01-16T00:00:00Z")
    const mismatch = failure(Effect.runSyncExit(prorate({ period: JANUARY, from: basic, to: plan("Y", 1, "JPY"), at })))
    expect(mismatch).toEqual([new CurrencyMismatch({ from: "EUR", to: "JPY" })])
    for (const outside of ["2026-12-31T23:59:59Z", "2027-02-01T00:00:00Z"]) {
      const exit = Effect.runSyncExit(prorate({ period: JANUARY, from: basic, to: pro, at: d(outside) }))
      expect(failure(exit)[0]).toBeInstanceOf(OutsidePeriod)
    }
  })

  it("at every hour of a period: a change and its undo net to 0, credits shrink as time passes, within the price", () => {
    const from = plan("From", 1999)
    const to = plan("To", 4999)
    let lastCredit = -Infinity
    for (let at = JANUARY.start.getTime(); at < JANUARY.end.getTime(); at += 3_600_000 + 1_000) {
      const there = run(from, to, new Date(at))
      const back = run(to, from, new Date(at))
      expect(there.total + back.total).toBe(0)
      const credit = there.lines.find((line) => line.amount < 0)?.amount ?? 0
      const charge = there.lines.find((line) => line.amount > 0)?.amount ?? 0
      expect(credit).toBeGreaterThanOrEqual(-1999)
      expect(charge).toBeLessThanOrEqual(4999)
      // Each line is within half a unit of the exact fraction (half-even rounding), and credits never grow later.
      const left = (JANUARY.end.getTime() - at) / 1000
      expect(Math.abs(credit + (1999 * Math.floor(left)) / 2_678_400)).toBeLessThanOrEqual(0.5)
      expect(credit).toBeGreaterThanOrEqual(lastCredit)
      lastCredit = credit
    }
  })

  it("computes with prices up to the largest amount without losing a unit", () => {
    const max = plan("Max", Number.MAX_SAFE_INTEGER)
    // 2^53 - 1 × 16/31, exact in bigint: 4,648,877,034,705,027.61 → …028.
    const proration = run(basic, max, d("2027-01-16T00:00:00Z"))
    expect(proration.lines[1]?.amount).toBe(4_648_877_034_705_028)
    expect(proration.total).toBe(4_648_877_034_705_028 - 516)
  })
})
