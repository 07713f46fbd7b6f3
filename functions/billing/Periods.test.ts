import { describe, expect, it } from "vitest"
import type { IntervalUnit } from "./Model.ts"
import { boundary, daysInMonth, nextPeriodEnd, periodAt, periodsBetween, secondsBetween } from "./Periods.ts"

const d = (iso: string) => new Date(iso)
const isos = (dates: ReadonlyArray<Date>) => dates.map((date) => date.toISOString())

/** The first `n` period ends after `anchor`, each from the previous end (as renewals chain them). */
const chain = (anchor: Date, unit: IntervalUnit, count: number, n: number) => {
  const ends: Array<Date> = []
  let start = anchor
  for (let i = 0; i < n; i++) {
    start = nextPeriodEnd(anchor, start, unit, count)
    ends.push(start)
  }
  return isos(ends)
}

describe("periods", () => {
  it("knows month lengths and leap years (divisible by 4, not by 100 unless by 400)", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map((m) => daysInMonth(2027, m))).toEqual([
      31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31,
    ])
    expect(daysInMonth(2028, 1)).toBe(29)
    expect(daysInMonth(2100, 1)).toBe(28)
    expect(daysInMonth(2000, 1)).toBe(29)
  })

  it("keeps a monthly anchor on the 31st: clamped to short months, never drifting (2027, not leap)", () => {
    expect(chain(d("2027-01-31T10:20:30.000Z"), "month", 1, 12)).toEqual([
      "2027-02-28T10:20:30.000Z",
      "2027-03-31T10:20:30.000Z",
      "2027-04-30T10:20:30.000Z",
      "2027-05-31T10:20:30.000Z",
      "2027-06-30T10:20:30.000Z",
      "2027-07-31T10:20:30.000Z",
      "2027-08-31T10:20:30.000Z",
      "2027-09-30T10:20:30.000Z",
      "2027-10-31T10:20:30.000Z",
      "2027-11-30T10:20:30.000Z",
      "2027-12-31T10:20:30.000Z",
      "2028-01-31T10:20:30.000Z",
    ])
  })

  it("gives Feb 29 to a monthly anchor on the 31st, 30th or 29th in a leap year", () => {
    expect(chain(d("2028-01-31T00:00:00Z"), "month", 1, 2)).toEqual([
      "2028-02-29T00:00:00.000Z",
      "2028-03-31T00:00:00.000Z",
    ])
    expect(chain(d("2028-01-30T00:00:00Z"), "month", 1, 2)).toEqual([
      "2028-02-29T00:00:00.000Z",
      "2028-03-30T00:00:00.000Z",
    ])
    expect(chain(d("2027-01-29T00:00:00Z"), "month", 1, 2)).toEqual([
      "2027-02-28T00:00:00.000Z",
      "2027-03-29T00:00:00.000Z",
    ])
    expect(chain(d("2028-01-29T00:00:00Z"), "month", 1, 1)).toEqual(["2028-02-29T00:00:00.000Z"])
  })

  it("keeps a day 28 or earlier exactly, and the last second of a day", () => {
    expect(chain(d("2027-01-28T23:59:59.000Z"), "month", 1, 3)).toEqual([
      "2027-02-28T23:59:59.000Z",
      "2027-03-28T23:59:59.000Z",
      "2027-04-28T23:59:59.000Z",
    ])
    expect(chain(d("2026-12-01T00:00:00Z"), "month", 1, 2)).toEqual([
      "2027-01-01T00:00:00.000Z",
      "2027-02-01T00:00:00.000Z",
    ])
  })

  it("moves a yearly anchor on Feb 29 to Feb 28 and back to Feb 29 in the next leap year", () => {
    expect(chain(d("2028-02-29T12:00:00Z"), "year", 1, 5)).toEqual([
      "2029-02-28T12:00:00.000Z",
      "2030-02-28T12:00:00.000Z",
      "2031-02-28T12:00:00.000Z",
      "2032-02-29T12:00:00.000Z",
      "2033-02-28T12:00:00.000Z",
    ])
    // 2100 is not a leap year, 2400 is.
    expect(isos([boundary(d("2096-02-29T00:00:00Z"), "year", 4, 1)])).toEqual(["2100-02-28T00:00:00.000Z"])
    expect(isos([boundary(d("2396-02-29T00:00:00Z"), "year", 4, 1)])).toEqual(["2400-02-29T00:00:00.000Z"])
  })

  it("counts intervals: every 3 months from Nov 30, every 2 years, every 2 weeks, every 10 days", () => {
    expect(chain(d("2026-11-30T08:00:00Z"), "month", 3, 4)).toEqual([
      "2027-02-28T08:00:00.000Z",
      "2027-05-30T08:00:00.000Z",
      "2027-08-30T08:00:00.000Z",
      "2027-11-30T08:00:00.000Z",
    ])
    expect(chain(d("2028-02-29T00:00:00Z"), "year", 2, 2)).toEqual([
      "2030-02-28T00:00:00.000Z",
      "2032-02-29T00:00:00.000Z",
    ])
    expect(chain(d("2026-12-31T23:00:00Z"), "week", 2, 2)).toEqual([
      "2027-01-14T23:00:00.000Z",
      "2027-01-28T23:00:00.000Z",
    ])
    expect(chain(d("2028-02-25T06:30:00Z"), "day", 10, 2)).toEqual([
      "2028-03-06T06:30:00.000Z",
      "2028-03-16T06:30:00.000Z",
    ])
  })

  it("keeps the time of day across the dates where local time zones change (UTC has none)", () => {
    // Europe's and the US's 2027 switches: a UTC cycle sees 24 h days and keeps its hour and minute.
    expect(chain(d("2027-03-27T01:30:00Z"), "day", 1, 2)).toEqual([
      "2027-03-28T01:30:00.000Z",
      "2027-03-29T01:30:00.000Z",
    ])
    expect(chain(d("2027-10-30T01:30:00.250Z"), "week", 1, 1)).toEqual(["2027-11-06T01:30:00.250Z"])
    expect(chain(d("2027-03-14T02:30:00Z"), "month", 1, 1)).toEqual(["2027-04-14T02:30:00.000Z"])
    expect(secondsBetween(d("2027-03-27T01:30:00Z"), d("2027-03-28T01:30:00Z"))).toBe(86_400)
  })

  it("computes far boundaries directly, equal to chaining them (large counts)", () => {
    const anchor = d("2027-01-31T04:05:06Z")
    expect(chain(anchor, "month", 1, 1200).at(-1)).toBe(boundary(anchor, "month", 1, 1200).toISOString())
    expect(boundary(anchor, "month", 1, 1200).toISOString()).toBe("2127-01-31T04:05:06.000Z")
    expect(boundary(anchor, "month", 1, 1201).toISOString()).toBe("2127-02-28T04:05:06.000Z")
    expect(boundary(anchor, "day", 365, 100).toISOString()).toBe(
      new Date(anchor.getTime() + 36_500 * 86_400_000).toISOString(),
    )
    expect(boundary(anchor, "year", 365, 1).toISOString()).toBe("2392-01-31T04:05:06.000Z")
    expect(nextPeriodEnd(anchor, boundary(anchor, "month", 7, 300), "month", 7).toISOString()).toBe(
      boundary(anchor, "month", 7, 301).toISOString(),
    )
    expect(() => boundary(anchor, "year", 365, 1000)).toThrow(RangeError)
  })

  it("refuses a count that is not a positive integer", () => {
    expect(() => boundary(d("2027-01-01T00:00:00Z"), "month", 0, 1)).toThrow(RangeError)
    expect(() => boundary(d("2027-01-01T00:00:00Z"), "day", 1.5, 1)).toThrow(RangeError)
  })

  it("finds the period holding an instant, the start included and the end excluded", () => {
    const anchor = d("2027-01-31T10:00:00Z")
    const feb = { start: "2027-01-31T10:00:00.000Z", end: "2027-02-28T10:00:00.000Z" }
    const mar = { start: "2027-02-28T10:00:00.000Z", end: "2027-03-31T10:00:00.000Z" }
    const at = (iso: string) => {
      const period = periodAt(anchor, d(iso), "month", 1)
      return { start: period.start.toISOString(), end: period.end.toISOString() }
    }
    expect(at("2027-01-31T10:00:00Z")).toEqual(feb)
    expect(at("2027-02-28T09:59:59Z")).toEqual(feb)
    expect(at("2027-02-28T10:00:00Z")).toEqual(mar)
    expect(at("2027-03-31T09:59:59.999Z")).toEqual(mar)
    // Before the anchor: the grid extends backwards.
    expect(at("2026-12-31T10:00:00Z")).toEqual({ start: "2026-12-31T10:00:00.000Z", end: feb.start })
    // nextPeriodEnd of an instant that is not a boundary is its period's end.
    expect(nextPeriodEnd(anchor, d("2027-03-01T00:00:00Z"), "month", 1).toISOString()).toBe(mar.end)
  })

  it("lists the periods that end within (from, to], in order (a test clock's advance)", () => {
    const anchor = d("2027-01-31T00:00:00Z")
    const periods = periodsBetween(anchor, d("2027-01-31T00:00:00Z"), d("2027-05-31T00:00:00Z"), "month", 1)
    expect(periods.map((p) => [p.start.toISOString().slice(0, 10), p.end.toISOString().slice(0, 10)])).toEqual([
      ["2027-01-31", "2027-02-28"],
      ["2027-02-28", "2027-03-31"],
      ["2027-03-31", "2027-04-30"],
      ["2027-04-30", "2027-05-31"],
    ])
    // One second short of an end: that period is not over.
    expect(periodsBetween(anchor, anchor, d("2027-02-27T23:59:59Z"), "month", 1)).toEqual([])
    // From the middle of a period: its end counts once it is passed.
    expect(
      periodsBetween(anchor, d("2027-02-10T00:00:00Z"), d("2027-03-01T00:00:00Z"), "month", 1).map((p) =>
        p.end.toISOString(),
      ),
    ).toEqual(["2027-02-28T00:00:00.000Z"])
    expect(periodsBetween(anchor, d("2027-03-01T00:00:00Z"), d("2027-03-01T00:00:00Z"), "month", 1)).toEqual([])
    expect(periodsBetween(anchor, anchor, d("2029-01-31T00:00:00Z"), "day", 1)).toHaveLength(731)
    expect(() => periodsBetween(anchor, anchor, d("2029-01-31T00:00:00Z"), "day", 1, 100)).toThrow(RangeError)
  })

  it("holds for every anchor day of a common and a leap year, monthly and yearly, 4 years on (exhaustive)", () => {
    const time = 13 * 3_600_000 + 14 * 60_000 + 15_000 + 16
    for (let day = Date.UTC(2027, 0, 1); day < Date.UTC(2029, 0, 1); day += 86_400_000) {
      const anchor = new Date(day + time)
      for (const [unit, months] of [
        ["month", 1],
        ["month", 5],
        ["year", 12],
      ] as const) {
        const count = unit === "year" ? 1 : months
        let previous = anchor
        for (let k = 1; k <= (unit === "year" ? 4 : 48 / count); k++) {
          const end = boundary(anchor, unit, count, k)
          const total = anchor.getUTCMonth() + k * months
          const year = anchor.getUTCFullYear() + Math.floor(total / 12)
          const month = total % 12
          // The anchor's day, clamped to the month's length; its month k × interval on; its time of day.
          expect([end.getUTCFullYear(), end.getUTCMonth(), end.getUTCDate()]).toEqual([
            year,
            month,
            Math.min(anchor.getUTCDate(), daysInMonth(year, month)),
          ])
          expect(end.getTime() % 86_400_000).toBe(time)
          // Chained renewals land on the same boundary; the instant before it is in the period ending there.
          expect(nextPeriodEnd(anchor, previous, unit, count).getTime()).toBe(end.getTime())
          const holding = periodAt(anchor, new Date(end.getTime() - 1), unit, count)
          expect([holding.start.getTime(), holding.end.getTime()]).toEqual([previous.getTime(), end.getTime()])
          previous = end
        }
      }
    }
  })

  it("counts whole seconds between two times", () => {
    expect(secondsBetween(d("2027-01-31T00:00:00Z"), d("2027-02-28T00:00:00Z"))).toBe(28 * 86_400)
    expect(secondsBetween(d("2028-02-01T00:00:00Z"), d("2028-03-01T00:00:00Z"))).toBe(29 * 86_400)
    expect(secondsBetween(d("2027-01-01T00:00:00.900Z"), d("2027-01-01T00:00:01.100Z"))).toBe(1)
  })
})
