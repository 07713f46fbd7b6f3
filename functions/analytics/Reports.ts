import { Context, Effect, Layer } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import * as Problem from "../../shared/Problem.ts"
import { ALL, bucketOf, GRANULARITIES, type Interval, OTHER, type RawEvent, valueText } from "./Rollups.ts"
import * as Sketch from "./Sketch.ts"

/** The longest range a report covers (days). */
export const MAX_RANGE_DAYS = 400
/** The most points of a time series. */
export const MAX_POINTS = 10_000
/** The most steps of a funnel. */
export const MAX_STEPS = 10

/** The platform events the overview counts (as their producers name them). */
export const OVERVIEW_EVENTS = {
  signups: "identity.user.created",
  logins: "auth.login.succeeded",
  posts: "blog.post.published",
} as const

/** Subscription statuses counted as active (and in MRR): paying, or being dunned. */
export const ACTIVE_STATUSES = ["active", "past_due"] as const

const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000

/** A stretch of buckets of one granularity: [start, end). */
export interface Segment {
  readonly g: string
  readonly start: number
  readonly end: number
}

/** Whole days, then whole hours, then minutes: the fewest rollup rows that cover [from, to) (minute-aligned). */
export const cover = (from: number, to: number): Array<Segment> => {
  const levels = [
    ["d", DAY],
    ["h", HOUR],
    ["m", MINUTE],
  ] as const
  const out: Array<Segment> = []
  const go = (a: number, b: number, level: number) => {
    if (a >= b) return
    const [g, size] = levels[level]!
    if (level === levels.length - 1) {
      out.push({ g, start: a, end: b })
      return
    }
    const start = Math.ceil(a / size) * size
    const end = Math.floor(b / size) * size
    if (start >= end) return go(a, b, level + 1)
    go(a, start, level + 1)
    out.push({ g, start, end })
    go(end, b, level + 1)
  }
  go(from, to, 0)
  return out
}

// A query parameter refused as the contract's decoding names one (`query.to`).
const invalid = (param: string, message: string) =>
  new Problem.ValidationFailed({
    detail: "The request does not match the API contract",
    errors: [{ path: `query.${param}`, message }],
  })

/** A report's range, checked: `from` before `to`, at most 400 days. */
export const checkRange = (from: string, to: string) => {
  const a = Date.parse(from)
  const b = Date.parse(to)
  if (b <= a) return Effect.fail(invalid("to", "must be after from"))
  if (b - a > MAX_RANGE_DAYS * DAY)
    return Effect.fail(invalid("to", `must be at most ${MAX_RANGE_DAYS} days after from`))
  return Effect.succeed({ from: a, to: b })
}

/** A time series query. */
export interface SeriesQuery {
  readonly event: string
  readonly from: string
  readonly to: string
  readonly interval: Interval
  readonly property?: string | undefined
  readonly value?: string | undefined
}

type Fails = Problem.ValidationFailed | Problem.ServiceUnavailable

/** Reports over the rollups plus the raw events past the watermark, read in one snapshot. */
export class Reports extends Context.Service<
  Reports,
  {
    timeseries(
      query: SeriesQuery,
    ): Effect.Effect<{ interval: Interval; points: Array<{ t: string; count: number; uniques: number }> }, Fails>
    top(query: {
      readonly event: string
      readonly property: string
      readonly from: string
      readonly to: string
      readonly limit: number
    }): Effect.Effect<{ items: Array<{ value: string; count: number }> }, Fails>
    funnel(query: {
      readonly steps: string
      readonly from: string
      readonly to: string
      readonly windowSeconds: number
    }): Effect.Effect<{ steps: Array<{ event: string; users: number }> }, Fails>
    overview(query: { readonly from: string; readonly to: string }): Effect.Effect<
      {
        signups: number
        activeUsers: { day: number; week: number; month: number }
        logins: number
        posts: number
        subscriptions: { active: number }
        mrr: { amount: number; currency: string | null }
      },
      Fails
    >
  }
>()("analytics/Reports") {
  static readonly layer = Layer.effect(
    Reports,
    Effect.gen(function* () {
      const db = yield* Db
      const s = db.schema
      const unavailable = Problem.unavailable("database unavailable", "analytics is unavailable, retry later")

      // One snapshot for the watermark, the rollups and the raw events past it: a pass of the worker committing in
      // between cannot make an event count twice or not at all.
      const snapshot = <A, R>(effect: Effect.Effect<A, DbError, R>) =>
        db
          .transaction(
            Effect.andThen(
              // JIT compiling a report's plan costs more (0.7–2.8 s measured) than the query it would speed up.
              db.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL jit = off"),
              effect,
            ),
          )
          .pipe(Effect.catchTag("DbError", unavailable))

      /** Raw events past the watermark of `names` (all, when undefined) in [from, to). */
      const tail = (names: ReadonlyArray<string> | undefined, from: number, to: number) =>
        Effect.gen(function* () {
          const [mark] = yield* db.query<{ txid: string; seq: string }>(
            `SELECT last_txid::text AS txid, last_seq::text AS seq FROM ${s}.rollup_watermark`,
          )
          const rows = yield* db.query<{
            name: string
            occurred_at: Date
            actor: string | null
            properties: Record<string, unknown>
          }>(
            // Found by position alone (the few rows past the watermark), then filtered: given the name and the time
            // as well, the planner may walk months of an event by (name, occurred_at) instead.
            `WITH past AS MATERIALIZED (
               SELECT e.name, e.occurred_at, e.actor, e.properties FROM ${s}.events e
               WHERE (e.txid, e.seq) > ($1::xid8, $2::bigint)
             )
             SELECT * FROM past WHERE occurred_at >= $3 AND occurred_at < $4
               ${names === undefined ? "" : "AND name = ANY($5)"}`,
            [mark!.txid, mark!.seq, new Date(from), new Date(to), ...(names === undefined ? [] : [names])],
          )
          return rows.map(
            (r): RawEvent => ({
              name: r.name,
              occurredAt: r.occurred_at.getTime(),
              actor: r.actor,
              properties: r.properties,
            }),
          )
        })

      /** Rollup rows of one event (and property value) over segments. */
      const rollups = (
        name: string,
        property: string,
        value: string,
        segments: ReadonlyArray<Segment>,
        withSketch: boolean,
      ) =>
        db.query<{ bucket: Date; count: string; sketch: Uint8Array | null }>(
          `SELECT r.bucket, r.count::text AS count, ${withSketch ? "r.sketch" : "NULL::bytea AS sketch"}
           FROM unnest($4::"char"[], $5::timestamptz[], $6::timestamptz[]) AS seg(g, a, b)
           JOIN ${s}.rollups r ON r.granularity = seg.g AND r.name = $1 AND r.property = $2 AND r.value = $3
             AND r.bucket >= seg.a AND r.bucket < seg.b`,
          [
            name,
            property,
            value,
            segments.map((x) => x.g),
            segments.map((x) => new Date(x.start)),
            segments.map((x) => new Date(x.end)),
          ],
        )

      const matches = (event: RawEvent, property: string | undefined, value: string | undefined) =>
        property === undefined ||
        (Object.hasOwn(event.properties, property) && valueText(event.properties[property]) === value)

      const timeseries = Effect.fn("Reports.timeseries")(function* (query: SeriesQuery) {
        const range = yield* checkRange(query.from, query.to)
        if ((query.property === undefined) !== (query.value === undefined)) {
          return yield* invalid(query.property === undefined ? "property" : "value", "property and value go together")
        }
        if (query.property !== undefined && query.interval === "minute") {
          return yield* invalid("interval", "a series by property value is hourly or daily")
        }
        const [g, size] = GRANULARITIES[query.interval]
        const start = bucketOf(range.from, query.interval)
        const points = Math.ceil((range.to - start) / size)
        if (points > MAX_POINTS) {
          return yield* invalid("interval", `gives ${points} points; at most ${MAX_POINTS}: choose a longer interval`)
        }
        const end = start + points * size
        const [rows, raw] = yield* snapshot(
          Effect.all([
            rollups(query.event, query.property ?? "", query.value ?? "", [{ g, start, end }], true),
            tail([query.event], start, end),
          ]),
        )
        const counts = new Array<number>(points).fill(0)
        const sketches = new Array<Sketch.Sketch | undefined>(points)
        for (const row of rows) {
          const i = (row.bucket.getTime() - start) / size
          counts[i]! += Number(row.count)
          sketches[i] = row.sketch === null ? sketches[i] : Sketch.deserialize(row.sketch)
        }
        for (const event of raw) {
          if (!matches(event, query.property, query.value)) continue
          const i = Math.floor((event.occurredAt - start) / size)
          counts[i]! += 1
          if (event.actor !== null) sketches[i] = Sketch.add(sketches[i] ?? Sketch.empty(), Sketch.hashOf(event.actor))
        }
        return {
          interval: query.interval,
          points: counts.map((count, i) => ({
            t: new Date(start + i * size).toISOString(),
            count,
            uniques: sketches[i] === undefined ? 0 : Sketch.estimate(sketches[i]!),
          })),
        }
      })

      // A range at minute resolution: from rounded down, to rounded up to the minute.
      const minutes = (range: { from: number; to: number }) => ({
        from: Math.floor(range.from / MINUTE) * MINUTE,
        to: Math.ceil(range.to / MINUTE) * MINUTE,
      })

      const top = Effect.fn("Reports.top")(function* (query: {
        readonly event: string
        readonly property: string
        readonly from: string
        readonly to: string
        readonly limit: number
      }) {
        // Property values are rolled up per hour and day: the range counts whole hours.
        const checked = yield* checkRange(query.from, query.to)
        const range = { from: Math.floor(checked.from / HOUR) * HOUR, to: Math.ceil(checked.to / HOUR) * HOUR }
        const segments = cover(range.from, range.to)
        const [rows, raw] = yield* snapshot(
          Effect.all([
            db.query<{ value: string; count: string }>(
              `SELECT r.value, sum(r.count)::text AS count
               FROM unnest($3::"char"[], $4::timestamptz[], $5::timestamptz[]) AS seg(g, a, b)
               JOIN ${s}.rollups r ON r.granularity = seg.g AND r.name = $1 AND r.property = $2
                 AND r.bucket >= seg.a AND r.bucket < seg.b
               GROUP BY r.value`,
              [
                query.event,
                query.property,
                segments.map((x) => x.g),
                segments.map((x) => new Date(x.start)),
                segments.map((x) => new Date(x.end)),
              ],
            ),
            tail([query.event], range.from, range.to),
          ]),
        )
        const totals = new Map<string, number>(rows.map((r) => [r.value, Number(r.count)]))
        for (const event of raw) {
          if (!Object.hasOwn(event.properties, query.property)) continue
          const value = valueText(event.properties[query.property])
          totals.set(value, (totals.get(value) ?? 0) + 1)
        }
        totals.delete(OTHER)
        const items = [...totals.entries()]
          .map(([value, count]) => ({ value, count }))
          .sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
          .slice(0, query.limit)
        return { items }
      })

      const funnel = Effect.fn("Reports.funnel")(function* (query: {
        readonly steps: string
        readonly from: string
        readonly to: string
        readonly windowSeconds: number
      }) {
        const range = yield* checkRange(query.from, query.to)
        const steps = query.steps.split(",").map((x) => x.trim())
        if (
          steps.length < 2 ||
          steps.length > MAX_STEPS ||
          steps.some((x) => !/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$/.test(x))
        ) {
          return yield* invalid("steps", `must be 2-${MAX_STEPS} event names separated by commas`)
        }
        // Step 1: each user's first occurrence in the range; step k: their first occurrence of step k after step k-1,
        // within windowSeconds of step 1, still in the range. From step 3 on, the users still in the funnel are few
        // (those who did two steps in order): step k's events are first narrowed to them (a semi-join, which hashes
        // those users), where a plain join hashed all of step k's events of the month (a CTE's users have no
        // statistics, so the planner will not hash them): 3 steps over 30 days of 10M events, 850-1,180 ms → 590-880.
        const stepEvents = (i: number, narrowed: boolean) =>
          `(SELECT actor, occurred_at FROM ${s}.events WHERE name = $${i + 4} AND occurred_at >= $1 AND occurred_at < $2
              ${narrowed ? `AND actor IN (SELECT actor FROM f${i})` : ""})`
        const ctes = steps.map((_, i) =>
          i === 0
            ? `f1 AS (SELECT actor, min(occurred_at) AS t0, min(occurred_at) AS t FROM ${s}.events
                      WHERE name = $4 AND occurred_at >= $1 AND occurred_at < $2 AND actor IS NOT NULL GROUP BY actor)`
            : `f${i + 1} AS (SELECT f.actor, f.t0, min(e.occurred_at) AS t FROM f${i} f
                 JOIN ${stepEvents(i, i >= 2)} e ON e.actor = f.actor AND e.occurred_at > f.t
                   AND e.occurred_at <= f.t0 + make_interval(secs => $3)
                 GROUP BY f.actor, f.t0)`,
        )
        const [row] = yield* db
          .transaction(
            Effect.andThen(
              // Per-user hash aggregates over a month of events: in memory, not spilled to disk (4 MB by default).
              db.query("SET LOCAL jit = off; SET LOCAL work_mem = '64MB'"),
              db.query<Record<string, string>>(
                `WITH ${ctes.join(",\n")}
                 SELECT ${steps.map((_, i) => `(SELECT count(*) FROM f${i + 1})::text AS c${i + 1}`).join(", ")}`,
                [new Date(range.from), new Date(range.to), query.windowSeconds, ...steps],
              ),
            ),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        return { steps: steps.map((event, i) => ({ event, users: Number(row![`c${i + 1}`]) })) }
      })

      const overview = Effect.fn("Reports.overview")(function* (query: { readonly from: string; readonly to: string }) {
        const range = minutes(yield* checkRange(query.from, query.to))
        const segments = cover(range.from, range.to)
        const names = Object.values(OVERVIEW_EVENTS)
        const windows = { day: DAY, week: 7 * DAY, month: 30 * DAY } as const
        const result = yield* snapshot(
          Effect.gen(function* () {
            const counts = yield* db.query<{ name: string; count: string }>(
              `SELECT r.name, sum(r.count)::text AS count
               FROM unnest($2::"char"[], $3::timestamptz[], $4::timestamptz[]) AS seg(g, a, b)
               JOIN ${s}.rollups r ON r.granularity = seg.g AND r.name = ANY($1) AND r.property = '' AND r.value = ''
                 AND r.bucket >= seg.a AND r.bucket < seg.b
               GROUP BY r.name`,
              [
                names,
                segments.map((x) => x.g),
                segments.map((x) => new Date(x.start)),
                segments.map((x) => new Date(x.end)),
              ],
            )
            const raw = yield* tail(names, range.from, range.to)
            // Active users: the sketches of every event over the last day, week and month before `to`.
            const sketches = {
              day: yield* rollups(ALL, "", "", cover(range.to - windows.day, range.to), true),
              week: yield* rollups(ALL, "", "", cover(range.to - windows.week, range.to), true),
              month: yield* rollups(ALL, "", "", cover(range.to - windows.month, range.to), true),
            }
            const actors = yield* tail(undefined, range.to - windows.month, range.to)
            const subscriptions = yield* db.query<{ active: string }>(
              `SELECT count(*)::text AS active FROM ${s}.billing_subscriptions WHERE status = ANY($1)`,
              [ACTIVE_STATUSES],
            )
            const mrr = yield* db.query<{ currency: string; monthly: string; n: string }>(
              `SELECT p.currency, count(*)::text AS n,
                 round(sum(CASE p.interval
                   WHEN 'day' THEN p.amount * 365.0 / 12 / p.interval_count
                   WHEN 'week' THEN p.amount * 52.0 / 12 / p.interval_count
                   WHEN 'month' THEN p.amount * 1.0 / p.interval_count
                   WHEN 'year' THEN p.amount / 12.0 / p.interval_count
                 END))::text AS monthly
               FROM ${s}.billing_subscriptions b JOIN ${s}.billing_plans p ON p.id = b.plan_id
               WHERE b.status = ANY($1)
               GROUP BY p.currency ORDER BY count(*) DESC, p.currency LIMIT 1`,
              [ACTIVE_STATUSES],
            )
            return { counts, raw, sketches, actors, subscriptions, mrr }
          }),
        )
        const total = new Map(result.counts.map((r) => [r.name, Number(r.count)]))
        for (const event of result.raw) total.set(event.name, (total.get(event.name) ?? 0) + 1)
        const active = (window: keyof typeof windows) => {
          const since = range.to - windows[window]
          let sketch = Sketch.empty()
          for (const row of result.sketches[window]) {
            if (row.sketch !== null) sketch = Sketch.merge(sketch, Sketch.deserialize(row.sketch))
          }
          for (const event of result.actors) {
            if (event.occurredAt >= since && event.actor !== null)
              sketch = Sketch.add(sketch, Sketch.hashOf(event.actor))
          }
          return Sketch.estimate(sketch)
        }
        const mrr = result.mrr[0]
        return {
          signups: total.get(OVERVIEW_EVENTS.signups) ?? 0,
          activeUsers: { day: active("day"), week: active("week"), month: active("month") },
          logins: total.get(OVERVIEW_EVENTS.logins) ?? 0,
          posts: total.get(OVERVIEW_EVENTS.posts) ?? 0,
          subscriptions: { active: Number(result.subscriptions[0]?.active ?? 0) },
          mrr: { amount: mrr === undefined ? 0 : Number(mrr.monthly), currency: mrr?.currency ?? null },
        }
      })

      return Reports.of({ timeseries, top, funnel, overview })
    }),
  )
}
