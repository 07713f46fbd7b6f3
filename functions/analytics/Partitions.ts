import { Context, Effect, Layer } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import * as Jobs from "../../shared/Jobs.ts"

// Raw events live in one partition per UTC day (events_pYYYYMMDD). This job keeps one for every day of the accepted
// window (the raw retention back, a few days ahead), and drops whole days past the retention once the rollup worker
// has folded them: rollups are kept, raw rows go with their partition (no DELETE of millions of rows). A day whose
// partition was missing when its events came keeps them in the default partition: they are moved into its partition
// when it is made. Event ids past the retention go by the kernel's retention job (`idsRule`).

const DAY = 86_400_000
/** Days made ahead of today. */
export const DAYS_AHEAD = 3

const dayName = (day: number) => `events_p${new Date(day).toISOString().slice(0, 10).replaceAll("-", "")}`

/** What one maintenance pass did. */
export interface Maintained {
  readonly created: number
  readonly dropped: number
}

/** The raw events' partitions. */
export class Partitions extends Context.Service<
  Partitions,
  { maintain(now?: number): Effect.Effect<Maintained, DbError> }
>()("analytics/Partitions") {
  static readonly layer = (options: { readonly rawRetentionDays: number }) =>
    Layer.effect(
      Partitions,
      Effect.gen(function* () {
        const db = yield* Db
        const s = db.schema
        // One maintainer at a time (instances starting together, the job).
        const locked = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          db.transaction(
            Effect.andThen(db.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`${s}.partitions`]), effect),
          )
        const existing = db.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
           JOIN pg_namespace n ON n.oid = p.relnamespace
           WHERE n.nspname = $1 AND p.relname = 'events' AND c.relname LIKE 'events\\_p%'`,
          [s],
        )
        const create = (day: number) =>
          locked(
            Effect.gen(function* () {
              const name = dayName(day)
              const [from, to] = [new Date(day).toISOString(), new Date(day + DAY).toISOString()]
              yield* db.query(`CREATE TABLE IF NOT EXISTS ${s}.${name} (LIKE ${s}.events INCLUDING DEFAULTS)`)
              // Rows of that day that came before their partition (none, normally).
              yield* db.query(
                `WITH moved AS (DELETE FROM ${s}.events_default WHERE occurred_at >= $1 AND occurred_at < $2 RETURNING *)
                 INSERT INTO ${s}.${name} SELECT * FROM moved`,
                [from, to],
              )
              yield* db.query(
                `ALTER TABLE ${s}.events ATTACH PARTITION ${s}.${name} FOR VALUES FROM ('${from}') TO ('${to}')`,
              )
            }),
          )
        // A day's partition goes only once every row in it is folded.
        const drop = (name: string) =>
          locked(
            Effect.gen(function* () {
              const [pending] = yield* db.query<{ n: number }>(
                `SELECT count(*)::int AS n FROM ${s}.${name} e, ${s}.rollup_watermark w
                 WHERE (e.txid, e.seq) > (w.last_txid, w.last_seq)`,
              )
              if ((pending?.n ?? 0) > 0) return false
              yield* db.query(`DROP TABLE ${s}.${name}`)
              return true
            }),
          )
        const maintain = Effect.fn("Partitions.maintain")(function* (now: number = Date.now()) {
          const today = Math.floor(now / DAY) * DAY
          const first = Math.floor((now - options.rawRetentionDays * DAY) / DAY) * DAY
          const have = new Set((yield* existing).map((r) => r.name))
          let created = 0
          for (let day = first; day <= today + DAYS_AHEAD * DAY; day += DAY) {
            if (have.has(dayName(day))) continue
            yield* create(day)
            created++
          }
          let dropped = 0
          for (const name of have) {
            const day = Date.parse(`${name.slice(8, 12)}-${name.slice(12, 14)}-${name.slice(14, 16)}T00:00:00Z`)
            if (day + DAY <= now - options.rawRetentionDays * DAY && (yield* drop(name))) dropped++
          }
          // What the default partition holds from before the window (folded), as a dropped day's rows go.
          yield* db.query(
            `DELETE FROM ${s}.events_default e USING ${s}.rollup_watermark w
             WHERE e.occurred_at < $1 AND (e.txid, e.seq) <= (w.last_txid, w.last_seq)`,
            [new Date(now - options.rawRetentionDays * DAY)],
          )
          if (created + dropped > 0) yield* Effect.logInfo("raw event partitions maintained", { created, dropped })
          return { created, dropped }
        })
        return Partitions.of({ maintain })
      }),
    )

  /** Makes the partitions of the window at start, before the first ingestion. */
  static readonly atStart = Layer.effectDiscard(Effect.flatMap(Effect.service(Partitions), (p) => p.maintain()))
}

/** The maintenance job's name: hourly (each tick once across instances). */
export const PARTITIONS_JOB = "partitions"

/** The maintenance job. */
export const partitionsJob = Jobs.cron("17 * * * *", () =>
  Effect.flatMap(Effect.service(Partitions), (p) => Effect.asVoid(p.maintain())),
)
