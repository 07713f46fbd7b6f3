import type { IntervalUnit } from "./Model.ts"

/**
 * Billing periods in UTC. A subscription's cycle is a grid of boundaries fixed by its ANCHOR (the instant its first
 * paid period started: the creation, the trial's end, or a plan change that reset the cycle) and its plan's interval:
 * boundary k = anchor + k × count units. Each boundary is computed from the anchor, never from the previous boundary,
 * so a clamped month does not drift the cycle: monthly from Jan 31 gives Feb 28 (29 in a leap year), Mar 31, Apr 30,
 * May 31 …; yearly from Feb 29 gives Feb 28 three times, then Feb 29 again. The anchor's time of day is kept in every
 * boundary (UTC has no daylight saving, so a day is always 86,400 s here). A period is [start, end): start included.
 */

/** A period of a subscription: from `start` (included) to `end` (excluded). */
export interface Period {
  readonly start: Date
  readonly end: Date
}

const DAY_MS = 86_400_000

/** The days in `month` (0-11) of `year`: the day before the next month's first (Date normalises day 0). */
export const daysInMonth = (year: number, month: number): number => {
  const date = new Date(0)
  date.setUTCFullYear(year, month + 1, 0)
  return date.getUTCDate()
}

const validCount = (count: number) => {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`Periods: an interval count of ${count}`)
}

const valid = (date: Date, what: string): Date => {
  if (Number.isNaN(date.getTime())) throw new RangeError(`Periods: ${what} is out of the representable range`)
  return date
}

/** `anchor` moved by `months` calendar months, its day clamped to the target month's length, its time of day kept. */
const addMonths = (anchor: Date, months: number): Date => {
  const total = anchor.getUTCMonth() + months
  const year = anchor.getUTCFullYear() + Math.floor(total / 12)
  const month = ((total % 12) + 12) % 12
  const day = Math.min(anchor.getUTCDate(), daysInMonth(year, month))
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0-99 to 1900-1999.
  const date = new Date(anchor.getTime())
  date.setUTCFullYear(year, month, day)
  return date
}

/**
 * The `k`-th boundary of the cycle anchored at `anchor` with `count` × `unit` periods: anchor + k × count units
 * (k = 0 is the anchor itself; k may be negative). Throws a RangeError past the range of a Date (year 275760).
 */
export const boundary = (anchor: Date, unit: IntervalUnit, count: number, k: number): Date => {
  validCount(count)
  if (!Number.isSafeInteger(k)) throw new RangeError(`Periods: a boundary index of ${k}`)
  switch (unit) {
    case "day":
      return valid(new Date(anchor.getTime() + k * count * DAY_MS), "the boundary")
    case "week":
      return valid(new Date(anchor.getTime() + k * count * 7 * DAY_MS), "the boundary")
    case "month":
      return valid(addMonths(anchor, k * count), "the boundary")
    case "year":
      return valid(addMonths(anchor, k * count * 12), "the boundary")
  }
}

/** The index of the first boundary strictly after `instant` (so boundary(index - 1) <= instant < boundary(index)). */
const indexAfter = (anchor: Date, instant: Date, unit: IntervalUnit, count: number): number => {
  let k: number
  if (unit === "day" || unit === "week") {
    const length = count * (unit === "day" ? 1 : 7) * DAY_MS
    k = Math.floor((instant.getTime() - anchor.getTime()) / length) + 1
  } else {
    const step = unit === "month" ? count : count * 12
    const months =
      (instant.getUTCFullYear() - anchor.getUTCFullYear()) * 12 + (instant.getUTCMonth() - anchor.getUTCMonth())
    k = Math.floor(months / step)
  }
  // The estimate is exact for days and weeks and at most one off for months and years (boundaries are increasing).
  while (boundary(anchor, unit, count, k).getTime() <= instant.getTime()) k += 1
  while (boundary(anchor, unit, count, k - 1).getTime() > instant.getTime()) k -= 1
  return k
}

/**
 * The end of the period that starts at `periodStart` (or, if `periodStart` is not a boundary, of the period holding
 * it): the first boundary of `anchor`'s cycle strictly after `periodStart`. The renewal's next period is
 * [current end, nextPeriodEnd(anchor, current end, …)).
 */
export const nextPeriodEnd = (anchor: Date, periodStart: Date, unit: IntervalUnit, count: number): Date =>
  boundary(anchor, unit, count, indexAfter(anchor, periodStart, unit, count))

/** The period of `anchor`'s cycle holding `instant`: start <= instant < end. */
export const periodAt = (anchor: Date, instant: Date, unit: IntervalUnit, count: number): Period => {
  const k = indexAfter(anchor, instant, unit, count)
  return { start: boundary(anchor, unit, count, k - 1), end: boundary(anchor, unit, count, k) }
}

/**
 * The periods of `anchor`'s cycle that END in (from, to], in time order: what a test clock advanced from `from` to
 * `to` must renew (each is [start, end) with its end passed). At most `limit` (default 10,000) of them, a RangeError
 * beyond, so a far advance of a daily plan cannot build an unbounded list.
 */
export const periodsBetween = (
  anchor: Date,
  from: Date,
  to: Date,
  unit: IntervalUnit,
  count: number,
  limit = 10_000,
): ReadonlyArray<Period> => {
  const periods: Array<Period> = []
  if (to.getTime() <= from.getTime()) return periods
  let k = indexAfter(anchor, from, unit, count)
  let end = boundary(anchor, unit, count, k)
  while (end.getTime() <= to.getTime()) {
    if (periods.length === limit) throw new RangeError(`Periods: more than ${limit} periods between the two times`)
    periods.push({ start: boundary(anchor, unit, count, k - 1), end })
    k += 1
    end = boundary(anchor, unit, count, k)
  }
  return periods
}

/** The seconds in [start, end), whole (billing times have no fractions of a second that matter; they are floored). */
export const secondsBetween = (start: Date, end: Date): number =>
  Math.floor(end.getTime() / 1000) - Math.floor(start.getTime() / 1000)
