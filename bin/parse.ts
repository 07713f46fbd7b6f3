// Parsers of option values: a malformed value is a usage error (exit code 2) naming what was expected, before any
// call is made.
import { InvalidArgumentError } from "commander"

/** A page size for `--limit`: 1–100, as the API accepts. */
export const limit = (value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new InvalidArgumentError("expected a whole number from 1 to 100")
  return n
}

const UNITS: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const DURATION = /^(\d+)([smhdw])$/
// RFC 3339 with a zone (Z or ±hh:mm), or a date alone.
const RFC3339 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2}))?$/i

/**
 * A time as RFC 3339 (UTC): an RFC 3339 time or date as given, `now`, or a duration (`15m`, `2h`, `7d`, `1w`) counted
 * back from now (`direction` -1, for filters) or forward (1, for a time to publish at).
 */
const time =
  (direction: 1 | -1) =>
  (value: string): string => {
    if (value === "now") return new Date().toISOString()
    const duration = DURATION.exec(value)
    if (duration !== null)
      return new Date(Date.now() + direction * Number(duration[1]) * UNITS[duration[2]!]!).toISOString()
    if (RFC3339.test(value) && !Number.isNaN(Date.parse(value))) return new Date(value).toISOString()
    const example = direction === 1 ? "2h (from now)" : "2h (ago)"
    throw new InvalidArgumentError(
      `expected an RFC 3339 time (2026-01-31T12:00:00Z), a date, now, or a duration like ${example}`,
    )
  }

/** A time in the past for a filter (`--since 2h`: two hours ago). */
export const pastTime = time(-1)
/** A time in the future (`--at 2h`: two hours from now). */
export const futureTime = time(1)

/** Repeatable option values, collected in order (`--permission a --permission b`). */
export const collect = (value: string, previous: ReadonlyArray<string> = []): Array<string> => [...previous, value]

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isUuid = (value: string) => UUID.test(value)
