import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { DateTime, exists } from "./DateTime.ts"

describe("DateTime", () => {
  const valid = Schema.is(DateTime)
  it("takes RFC 3339 date-times with an offset that exist", () => {
    for (const text of ["2030-01-31T09:00:00Z", "2028-02-29T23:59:59.123+02:00", "2030-12-31t00:00:00-05:30"]) {
      expect(valid(text), text).toBe(true)
    }
  })
  it("refuses days, hours and minutes that do not exist, which Date.parse rolls over", () => {
    for (const text of [
      "2026-02-31T00:00:00Z",
      "2026-02-29T00:00:00Z",
      "2026-04-31T12:00:00+02:00",
      "2026-01-01T24:00:00Z",
      "2026-01-01T12:60:00Z",
      "2026-13-01T00:00:00Z",
    ]) {
      expect(valid(text), text).toBe(false)
    }
  })
  it("refuses other shapes: no offset, a date alone, spaces", () => {
    for (const text of ["2030-01-31T09:00:00", "2030-01-31", "2030-01-31 09:00:00Z", ""]) {
      expect(valid(text), text).toBe(false)
    }
  })
  it("checks a date alone too (the audit log's filters take one)", () => {
    expect(exists("2024-02-29")).toBe(true)
    expect(exists("2025-02-29")).toBe(false)
    expect(exists("0001-01-01")).toBe(true)
  })
})
