import { Schema } from "effect"

/** An RFC 3339 date-time with its offset: `2030-01-31T09:00:00Z`, `2030-01-31T09:00:00.5+02:00`. */
export const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i

/**
 * Whether the date of text shaped `YYYY-MM-DD…` exists (and its time's fields, when it has them): `Date.parse` rolls
 * 2026-02-31 over into March and takes 24:00, so a shape check and `Date.parse` alone accept both.
 */
export const exists = (text: string): boolean => {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?)?/.exec(text)
  if (match === null) return false
  const [y, mo, d, h, mi, sec] = match.slice(1).map((field) => Number(field ?? 0)) as [number, ...Array<number>]
  const day = new Date(0)
  day.setUTCFullYear(y, mo! - 1, d)
  const fields = day.getUTCFullYear() === y && day.getUTCMonth() === mo! - 1 && day.getUTCDate() === d
  return fields && h! < 24 && mi! < 60 && sec! < 60 && !Number.isNaN(Date.parse(text))
}

/** An RFC 3339 date-time with its offset that exists; anything else is a 400 naming the field. */
export const DateTime = Schema.String.check(
  Schema.isPattern(DATE_TIME, { message: "must be an RFC 3339 date-time with offset, such as 2030-01-31T09:00:00Z" }),
  Schema.makeFilter((text: string) => !DATE_TIME.test(text) || exists(text), {
    message: "must be a date-time that exists",
  }),
)
