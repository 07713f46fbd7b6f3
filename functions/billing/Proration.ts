import { Data, Effect } from "effect"
import type { IntervalUnit } from "./Model.ts"
import { type Currency, fraction, type MoneyOverflow, sum } from "./Money.ts"
import { boundary, type Period, secondsBetween } from "./Periods.ts"

/**
 * Proration of a plan change, pure and integer-only. The rule (Stripe's): a change at `at` inside the paid period
 * [start, end) credits the unused remainder of the old plan and charges the remainder on the new plan, both BY THE
 * SECOND: price × (seconds from `at` to the end) / (seconds in the period), each line rounded half-even on its own
 * (Money.fraction, the one rounding rule). Seconds are whole: a time's fraction of a second is dropped before counting.
 *
 * A change to a plan billed on another interval (another unit or count: monthly to yearly, monthly to quarterly)
 * resets the billing cycle, as Stripe does: the new period starts at `at` and runs one full interval of the new plan,
 * the new plan is charged for that whole period now, and the unused remainder of the old plan is credited against it.
 *
 * Successive changes need nothing more to never bill twice: each change credits the plan the subscription is on at
 * that moment (the one the previous change moved it to), for the time left from then on, so a change and its undo at
 * the same second cancel out exactly, whatever the rounding.
 */

/** What proration needs of a plan. */
export interface PricedPlan {
  readonly name: string
  readonly amount: number
  readonly currency: Currency
  readonly interval: IntervalUnit
  readonly intervalCount: number
}

/** A line a change makes: a credit (negative) or a charge, for [periodStart, periodEnd). */
export interface ProrationLine {
  readonly description: string
  readonly amount: number
  readonly quantity: 1
  readonly periodStart: Date
  readonly periodEnd: Date
}

/** What a change at `at` costs: its lines, their sum, and the new period when the billing cycle resets. */
export interface Proration {
  readonly lines: ReadonlyArray<ProrationLine>
  readonly total: number
  readonly currency: Currency
  /** The period that starts at `at` when the new plan has another interval (the cycle resets), else null. */
  readonly newPeriod: Period | null
}

/** The new plan is priced in another currency than the subscription's: a subscription keeps its currency. */
export class CurrencyMismatch extends Data.TaggedError("CurrencyMismatch")<{
  readonly from: Currency
  readonly to: Currency
}> {}

/** The change's time is not inside the period it would prorate (start <= at < end). */
export class OutsidePeriod extends Data.TaggedError("OutsidePeriod")<{
  readonly at: Date
  readonly period: Period
}> {}

/** Whether two plans bill on the same interval (then a change keeps the billing cycle). */
export const sameInterval = (a: PricedPlan, b: PricedPlan): boolean =>
  a.interval === b.interval && a.intervalCount === b.intervalCount

/** A time as a line's description shows it: RFC 3339 UTC to the second. */
export const describeTime = (at: Date): string => `${at.toISOString().slice(0, 19)}Z`

/**
 * The lines of changing from `from` to `to` at `at` within `period`. Lines of amount 0 (a free plan's credit, or the
 * rounding of the last seconds of a cheap plan) are left out: they would only say nothing happened.
 */
export const prorate = (input: {
  readonly period: Period
  readonly from: PricedPlan
  readonly to: PricedPlan
  readonly at: Date
}): Effect.Effect<Proration, CurrencyMismatch | OutsidePeriod | MoneyOverflow> =>
  Effect.gen(function* () {
    const { period, from, to, at } = input
    if (from.currency !== to.currency) return yield* new CurrencyMismatch({ from: from.currency, to: to.currency })
    const whole = secondsBetween(period.start, period.end)
    if (at.getTime() < period.start.getTime() || at.getTime() >= period.end.getTime() || whole <= 0) {
      return yield* new OutsidePeriod({ at, period })
    }
    // Whole seconds left (none in the last fraction of a second of a period whose end has one).
    const left = Math.max(0, secondsBetween(at, period.end))
    const after = describeTime(at)
    const credit: ProrationLine = {
      description: `Unused time on ${from.name} after ${after}`,
      amount: yield* fraction(-from.amount, left, whole, "planId"),
      quantity: 1,
      periodStart: at,
      periodEnd: period.end,
    }
    let charge: ProrationLine
    let newPeriod: Period | null = null
    if (sameInterval(from, to)) {
      charge = {
        description: `Remaining time on ${to.name} after ${after}`,
        amount: yield* fraction(to.amount, left, whole, "planId"),
        quantity: 1,
        periodStart: at,
        periodEnd: period.end,
      }
    } else {
      newPeriod = { start: at, end: boundary(at, to.interval, to.intervalCount, 1) }
      charge = {
        description: `${to.name} from ${after} to ${describeTime(newPeriod.end)}`,
        amount: to.amount,
        quantity: 1,
        periodStart: newPeriod.start,
        periodEnd: newPeriod.end,
      }
    }
    const lines = [credit, charge].filter((line) => line.amount !== 0)
    return { lines, total: yield* sum(lines.map((line) => line.amount)), currency: to.currency, newPeriod }
  })
