import { Context, Duration, Effect, Layer } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import { pollLoop } from "../../shared/PollLoop.ts"
import * as Sketch from "./Sketch.ts"

// The rollup worker: ONE at a time across instances (a transaction-level advisory lock), it folds the raw events past
// its watermark into per-minute, per-hour and per-day rows (per property value: per hour and per day), and advances the watermark in the same transaction. It reads
// only rows of transactions older than every transaction still running (`txid < pg_snapshot_xmin`): an ingestion
// that took its sequence numbers early but commits late is folded on a later pass, never skipped (the classic
// watermark bug; PgEventBus reads outboxes the same way). Reports read the rollups for what is folded and the raw
// events past the watermark, in one snapshot, so an accepted event counts at once and exactly once.

/** Granularities, their bucket length (ms) and their code in the table. */
export const GRANULARITIES = { minute: ["m", 60_000], hour: ["h", 3_600_000], day: ["d", 86_400_000] } as const
export type Interval = keyof typeof GRANULARITIES

/** The rollup of every event (active users). */
export const ALL = "$all"
/** Where a property's values past the cap of a bucket are counted. */
export const OTHER = "$other"
/** The most distinct values of one property counted apart per event and bucket; the rest count as `$other`. */
export const VALUES_PER_BUCKET = 1_000
/** Raw events folded per transaction. */
export const BATCH = 5_000

/** A property's value as rolled up and filtered on: strings as they are, other scalars as JSON. */
export const valueText = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value))

/** The start of the bucket of `time` (UTC). */
export const bucketOf = (time: number, interval: Interval) => {
  const size = GRANULARITIES[interval][1]
  return Math.floor(time / size) * size
}

/** A raw event as the worker and the reports read it. */
export interface RawEvent {
  readonly name: string
  readonly occurredAt: number
  readonly actor: string | null
  readonly properties: Readonly<Record<string, unknown>>
}

/** One rollup row's increment: its key, the events and the users' sketch. */
export interface Increment {
  readonly granularity: string
  readonly name: string
  readonly property: string
  readonly value: string
  readonly bucket: number
  count: number
  sketch: Sketch.Sketch
}

const keyOf = (g: string, name: string, property: string, value: string, bucket: number) =>
  `${g}\u0000${name}\u0000${property}\u0000${value}\u0000${bucket}`

/** The increments of a run of raw events: per granularity, per event (and `$all`), per property value. */
export const aggregate = (events: ReadonlyArray<RawEvent>): Map<string, Increment> => {
  const out = new Map<string, Increment>()
  const bump = (g: string, name: string, property: string, value: string, bucket: number, hash: bigint | null) => {
    const key = keyOf(g, name, property, value, bucket)
    let row = out.get(key)
    if (row === undefined) {
      row = { granularity: g, name, property, value, bucket, count: 0, sketch: Sketch.empty() }
      out.set(key, row)
    }
    row.count++
    if (hash !== null) row.sketch = Sketch.add(row.sketch, hash)
  }
  for (const event of events) {
    const hash = event.actor === null ? null : Sketch.hashOf(event.actor)
    for (const [interval, [g]] of Object.entries(GRANULARITIES)) {
      const bucket = bucketOf(event.occurredAt, interval as Interval)
      bump(g, event.name, "", "", bucket, hash)
      bump(g, ALL, "", "", bucket, hash)
      // Per property value only hourly and daily: per minute they would be about as many rows as the events.
      if (g === "m") continue
      for (const [property, value] of Object.entries(event.properties)) {
        bump(g, event.name, property, valueText(value), bucket, hash)
      }
    }
  }
  return out
}

interface Position {
  readonly txid: string
  readonly seq: string
}

/** The rollup worker's pass. */
export class Rollups extends Context.Service<
  Rollups,
  {
    /**
     * Folds at most one batch (`limit`, default BATCH) of raw events past the watermark; returns how many (0: caught
     * up, or another instance folds).
     */
    foldOnce(limit?: number): Effect.Effect<number, DbError>
    /** Folds until caught up, `limit` events a transaction (the bench, after loading events directly). */
    drain(limit?: number): Effect.Effect<number, DbError>
  }
>()("analytics/Rollups") {
  static readonly layer = Layer.effect(
    Rollups,
    Effect.gen(function* () {
      const db = yield* Db
      const s = db.schema
      const foldOnce = Effect.fn("Rollups.foldOnce")(function* (limit: number = BATCH) {
        return yield* db.transaction(
          Effect.gen(function* () {
            const [lock] = yield* db.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock(hashtext($1)) AS ok", [
              `${s}.rollups`,
            ])
            if (!lock?.ok) return 0
            // The keys of a pass are looked up one by one in the primary key: a hash join would read the whole
            // rollups table on every pass (it grows for ever), which the planner may prefer for a large batch.
            yield* db.query("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            const [mark] = yield* db.query<{ txid: string; seq: string }>(
              `SELECT last_txid::text AS txid, last_seq::text AS seq FROM ${s}.rollup_watermark`,
            )
            const rows = yield* db.query<{
              txid: string
              seq: string
              name: string
              occurred_at: Date
              actor: string | null
              properties: Record<string, unknown>
            }>(
              `SELECT e.txid::text AS txid, e.seq::text AS seq, e.name, e.occurred_at, e.actor, e.properties
               FROM ${s}.events e
               WHERE (e.txid, e.seq) > ($1::xid8, $2::bigint) AND e.txid < pg_snapshot_xmin(pg_current_snapshot())
               ORDER BY e.txid, e.seq LIMIT $3`,
              [mark!.txid, mark!.seq, limit],
            )
            if (rows.length === 0) return 0
            const increments = aggregate(
              rows.map((r) => ({
                name: r.name,
                occurredAt: r.occurred_at.getTime(),
                actor: r.actor,
                properties: r.properties,
              })),
            )
            yield* write([...increments.values()])
            const last: Position = rows[rows.length - 1]!
            yield* db.query(
              `UPDATE ${s}.rollup_watermark SET last_txid = $1::xid8, last_seq = $2, updated_at = now()`,
              [last.txid, last.seq],
            )
            return rows.length
          }),
        )
      })

      // Upserts the increments: new property values past the cap of their bucket go to `$other`; the sketches of
      // existing rows are read and merged here (only the lock holder writes rollups, so nothing changes meanwhile).
      const write = (increments: Array<Increment>) =>
        Effect.gen(function* () {
          const capped = yield* cap(increments)
          const existing = yield* db.query<{ k: number; sketch: Uint8Array }>(
            `SELECT k.k, r.sketch FROM unnest($1::"char"[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
               WITH ORDINALITY AS k(g, name, property, value, bucket, k)
             JOIN ${s}.rollups r ON r.granularity = k.g AND r.name = k.name AND r.property = k.property
               AND r.value = k.value AND r.bucket = k.bucket`,
            columns(capped),
          )
          for (const row of existing) {
            const inc = capped[Number(row.k) - 1]!
            inc.sketch = Sketch.merge(Sketch.deserialize(row.sketch), inc.sketch)
          }
          yield* db.query(
            `INSERT INTO ${s}.rollups (granularity, name, property, value, bucket, count, sketch)
             SELECT * FROM unnest($1::"char"[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[],
                                  $7::bytea[])
             ON CONFLICT (granularity, name, property, value, bucket)
             DO UPDATE SET count = ${s}.rollups.count + excluded.count, sketch = excluded.sketch`,
            [...columns(capped), capped.map((i) => i.count), capped.map((i) => Sketch.serialize(i.sketch))],
          )
        })

      const columns = (increments: ReadonlyArray<Increment>) => [
        increments.map((i) => i.granularity),
        increments.map((i) => i.name),
        increments.map((i) => i.property),
        increments.map((i) => i.value),
        increments.map((i) => new Date(i.bucket)),
      ]

      // Values a bucket has not seen yet take the free places of its cap, most frequent first; the others are counted
      // under `$other` (merged with the batch's own `$other` increment).
      const cap = (increments: Array<Increment>) =>
        Effect.gen(function* () {
          const props = increments.filter((i) => i.property !== "")
          if (props.length === 0) return increments
          const known = yield* db.query<{ k: number; present: boolean; used: number }>(
            `SELECT k.k,
                    EXISTS (SELECT 1 FROM ${s}.rollups r WHERE r.granularity = k.g AND r.name = k.name
                              AND r.property = k.property AND r.value = k.value AND r.bucket = k.bucket) AS present,
                    (SELECT count(*)::int FROM ${s}.rollups r WHERE r.granularity = k.g AND r.name = k.name
                       AND r.property = k.property AND r.bucket = k.bucket AND r.property <> '') AS used
             FROM unnest($1::"char"[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
               WITH ORDINALITY AS k(g, name, property, value, bucket, k)`,
            columns(props),
          )
          const kept: Array<Increment> = increments.filter((i) => i.property === "")
          const groups = new Map<string, { used: number; fresh: Array<Increment> }>()
          for (const row of known) {
            const inc = props[Number(row.k) - 1]!
            if (row.present) {
              kept.push(inc)
              continue
            }
            const group = keyOf(inc.granularity, inc.name, inc.property, "", inc.bucket)
            const entry = groups.get(group) ?? { used: row.used, fresh: [] }
            entry.fresh.push(inc)
            groups.set(group, entry)
          }
          for (const { used, fresh } of groups.values()) {
            fresh.sort((a, b) => b.count - a.count)
            const room = Math.max(0, VALUES_PER_BUCKET - used)
            kept.push(...fresh.slice(0, room))
            const rest = fresh.slice(room)
            if (rest.length === 0) continue
            const other = kept.find(
              (i) =>
                i.granularity === rest[0]!.granularity &&
                i.name === rest[0]!.name &&
                i.property === rest[0]!.property &&
                i.value === OTHER &&
                i.bucket === rest[0]!.bucket,
            )
            const into = other ?? { ...rest[0]!, value: OTHER, count: 0, sketch: Sketch.empty() }
            for (const inc of rest) {
              into.count += inc.count
              into.sketch = Sketch.merge(into.sketch, inc.sketch)
            }
            if (other === undefined) kept.push(into)
          }
          return kept
        })

      const drain = Effect.fn("Rollups.drain")(function* (limit: number = BATCH) {
        let total = 0
        for (;;) {
          const n = yield* foldOnce(limit)
          total += n
          if (n < limit) return total
        }
      })
      return Rollups.of({ foldOnce, drain })
    }),
  )

  /** The worker: folds while there is work, then waits `intervalMs`; a failing pass backs off and is retried. */
  static readonly worker = (intervalMs: number) =>
    Layer.effectDiscard(
      Effect.flatMap(Effect.service(Rollups), (rollups) =>
        Effect.forkScoped(
          pollLoop(rollups.foldOnce(), {
            what: "rollup pass",
            batchSize: BATCH,
            pollInterval: Duration.millis(intervalMs),
            maxBackoff: "10 seconds",
          }),
        ),
      ),
    )
}
