import { Context, Effect, Layer, Metric, Option } from "effect"
import { Db, type DbError } from "./Db.ts"
import * as Idempotency from "./Idempotency.ts"
import * as Jobs from "./Jobs.ts"
import { DEFAULT_MAX_ATTEMPTS as MAIL_MAX_ATTEMPTS } from "./MailSender.ts"

// Retention: rows that have served their purpose are deleted by a job of the function that owns them, a short DELETE
// at a time. Each statement removes at most `batchSize` rows it can lock at once (`FOR UPDATE SKIP LOCKED`: a row a
// request holds is left for the next run, never waited for), so no lock is held longer than one small statement.

/**
 * Rows of one table to prune: `delete(schema)` is a DELETE of at most `$1` rows (the batch size) among those past the
 * cutoff `$2` (a timestamptz: now minus `keepDays`), written so that an index finds them.
 */
export interface Rule {
  /** Names the rule in metrics and logs (`outbox`, `sessions`). */
  readonly name: string
  /** How long a row is kept after it has served its purpose. */
  readonly keepDays: number
  readonly delete: (schema: string) => string
  /** Extra parameters after the batch size and the cutoff (`$3`, ...). */
  readonly params?: ReadonlyArray<unknown>
}

/**
 * A batched DELETE of `table`'s rows that match `where` (which may use `$2`, the cutoff), picked by their key (one
 * column, or several for a composite key).
 */
export const deleteWhere =
  (table: string, key: string | ReadonlyArray<string>, where: string) =>
  (schema: string): string => {
    const columns = typeof key === "string" ? key : key.join(", ")
    const picked = typeof key === "string" ? key : `(${columns})`
    return `DELETE FROM ${schema}.${table} WHERE ${picked} IN (
       SELECT ${columns} FROM ${schema}.${table} WHERE ${where} LIMIT $1 FOR UPDATE SKIP LOCKED)`
  }

/** What the kernel's rules read from a function's config. */
export interface KernelRetentionConfig {
  readonly eventRetentionDays: number
  readonly inboxRetentionDays: number
  readonly mailRetentionDays: number
  readonly kafkaBrokers: Option.Option<ReadonlyArray<string>>
}

/**
 * The kernel's tables (KernelMigrations.ts), in every function with a database:
 * - outbox: with Kafka, rows written `EVENT_RETENTION_DAYS` ago that the relay published (an unpublished row stays);
 *   on the embedded bus, whose log the outbox is, rows written that long ago, as Kafka drops a topic's old records
 *   (consumers further behind than that lose them: keep it above the longest consumer outage you plan for);
 * - inbox: deduplication rows of events handled `INBOX_RETENTION_DAYS` ago (14 by default: longer than a bus can
 *   redeliver an event — Kafka keeps a record up to `retention.ms` + `segment.ms`, 7 + 7 days by default, and a group
 *   whose offsets expired reads its topics again from the start);
 * - mail_outbox: mail written `MAIL_RETENTION_DAYS` ago that was sent or given up (its links expired long before);
 * - idempotency_keys: answers kept for `Idempotency-Key` repeats, once their 24-hour window has passed.
 * Dead letters are not pruned: each waits for a person.
 */
export const kernelRules = (config: KernelRetentionConfig): ReadonlyArray<Rule> => [
  {
    name: "outbox",
    keepDays: config.eventRetentionDays,
    delete: deleteWhere("outbox", "seq", "created_at < $2 AND (published_at IS NOT NULL OR $3)"),
    params: [Option.isNone(config.kafkaBrokers)],
  },
  {
    name: "inbox",
    keepDays: config.inboxRetentionDays,
    delete: deleteWhere("inbox", ["consumer", "event_id"], "processed_at < $2"),
  },
  {
    name: "mail_outbox",
    keepDays: config.mailRetentionDays,
    // Mail still being tried is kept, however old (a sender that was down).
    delete: deleteWhere("mail_outbox", "id", "created_at < $2 AND (sent_at IS NOT NULL OR attempts >= $3)"),
    params: [MAIL_MAX_ATTEMPTS],
  },
  {
    name: "idempotency_keys",
    keepDays: Idempotency.WINDOW_HOURS / 24,
    delete: deleteWhere("idempotency_keys", ["caller", "key"], "created_at < $2"),
  },
]

/** The rules a function's retention job applies: the kernel's and its own (`FunctionApp.define`'s `retention`). */
export class Rules extends Context.Service<
  Rules,
  { readonly rules: ReadonlyArray<Rule>; readonly batchSize: number }
>()("shared/Retention/Rules") {}

const pruned = Metric.counter("retention_pruned_total", {
  description: "Rows deleted by retention, by rule",
  incremental: true,
})

/**
 * Applies every rule, each until a batch comes back short, and returns the rows deleted per rule. The cutoff of a rule
 * is fixed when the run starts, so a run ends even while rows keep expiring. A rule that fails (its table refused,
 * the database away) does not keep the others from running: the run fails after them, with the first failure.
 */
export const run: Effect.Effect<Record<string, number>, DbError, Db | Rules> = Effect.gen(function* () {
  const db = yield* Db
  const { rules, batchSize } = yield* Rules
  const counts: Record<string, number> = {}
  const failures: Array<DbError> = []
  const started = Date.now()
  for (const rule of rules) {
    const cutoff = new Date(started - rule.keepDays * 86_400_000)
    const statement = rule.delete(db.schema)
    let total = 0
    const pruneAll = Effect.gen(function* () {
      for (;;) {
        const rows = yield* db.query(
          `WITH deleted AS (${statement} RETURNING 1) SELECT count(*)::int AS n FROM deleted`,
          [batchSize, cutoff, ...(rule.params ?? [])],
        )
        const n = (rows[0]?.n as number | undefined) ?? 0
        total += n
        if (n > 0) yield* Metric.update(Metric.withAttributes(pruned, { rule: rule.name }), n)
        if (n < batchSize) return
      }
    })
    const failed = yield* Effect.flip(pruneAll).pipe(Effect.option)
    if (failed._tag === "Some") {
      failures.push(failed.value)
      yield* Effect.logWarning("retention rule failed", { rule: rule.name, error: failed.value.message })
    }
    counts[rule.name] = total
  }
  const deleted = Object.values(counts).reduce((a, b) => a + b, 0)
  if (deleted > 0) yield* Effect.logInfo("retention pruned rows", counts)
  if (failures.length > 0) return yield* Effect.fail(failures[0]!)
  return counts
}).pipe(Effect.withSpan("Retention.run"))

/** The retention job's name and schedule: every 10 minutes (UTC), each tick once across the function's instances. */
export const JOB = "retention"
export const job = Jobs.cron("*/10 * * * *", () => Effect.asVoid(run), { retry: { limit: 2 } })

/** The jobs a function with the kernel's tables runs for retention (its app definition adds its own). */
export const jobs: Jobs.JobSpecs<Db | Rules> = { [JOB]: job }

/** The rules the retention job applies, and the rows each of its statements deletes at most. */
export const layer = (rules: ReadonlyArray<Rule>, batchSize: number): Layer.Layer<Rules> =>
  Layer.succeed(Rules, Rules.of({ rules, batchSize }))
