import { Duration, Effect, Layer, type Scope } from "effect"
import { assertIdentifier, Db } from "./Db.ts"
import {
  consume,
  deadLetterOf,
  EventBus,
  EventBusError,
  type RetryPolicy,
  retryPolicy,
  type SubscribeOptions,
} from "./EventBus.ts"
import { pollLoop } from "./PollLoop.ts"

/** Kernel tables of the embedded bus (see KernelMigrations.ts). */
export { eventBusMigrations as migrations } from "./KernelMigrations.ts"

// SQLSTATEs of a missing relation and column: the producer's outbox is not there (or not migrated) yet.
const NOT_MIGRATED = new Set(["42P01", "42703"])

/** Tuning of the embedded bus; every field has a default. */
export interface PgEventBusOptions {
  /** Default retry policy of this bus's subscriptions. */
  readonly retry?: Partial<RetryPolicy>
  /** Wait between polls when a subscription has caught up; default 100 ms. */
  readonly pollInterval?: Duration.Input
  /** Outbox rows read per poll; default 100. */
  readonly batchSize?: number
  /** Where a topic's outbox lives; default `schemaOfTopic`. */
  readonly schemaOf?: (topic: string) => string
}

/** The schema of the service producing a topic: `identity.events` → `identity`, `user-prefs.events` → `user_prefs`. */
export const schemaOfTopic = (topic: string): string => {
  if (!topic.endsWith(".events")) throw new Error(`topic ${topic} is not of the form <service>.events`)
  return assertIdentifier(topic.slice(0, -".events".length).replaceAll("-", "_"))
}

interface Position {
  readonly txid: string
  readonly seq: string
}

interface OutboxRow extends Position {
  readonly id: string | null
  readonly event: string
  readonly [column: string]: unknown
}

/**
 * Builds the bus. A subscription reads the producer's outbox in the order transactions ended: rows are read by
 * (writing transaction id, seq) and only once every transaction that could still add an earlier row has ended, so a
 * slow transaction's row is never skipped (a bare `seq > last` would skip it). Several instances of one consumer
 * may poll together: the inbox makes the second one skip what the first handled.
 */
export const make = Effect.fnUntraced(function* (options: PgEventBusOptions = {}) {
  const db = yield* Db
  const own = assertIdentifier(db.schema)
  const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? "100 millis")
  const batchSize = options.batchSize ?? 100
  const schemaOf = options.schemaOf ?? schemaOfTopic

  const subscribe = <R>(subscription: SubscribeOptions<R>): Effect.Effect<void, EventBusError, Scope.Scope | R> => {
    const { topic, group, handler } = subscription
    const retry = retryPolicy(options.retry, subscription.retry)
    const broadcast = subscription.broadcast

    // What follows a consumed row. A broadcast subscription keeps its position in memory only and logs what it could not
    // handle; a shared one moves its stored offset (one statement), together with the dead letter when there is one.
    const settle = (row: OutboxRow, dead: ReturnType<typeof deadLetterOf>) => {
      if (broadcast !== undefined) {
        return dead === undefined
          ? Effect.void
          : Effect.logError("event skipped by a broadcast subscription", { event_seq: row.seq, ...dead })
      }
      const advance = db.query(
        `UPDATE ${own}.eventbus_offsets SET last_txid = $3::xid8, last_seq = $4, updated_at = now()
         WHERE group_id = $1 AND topic = $2`,
        [group, topic, row.txid, row.seq],
      )
      if (dead === undefined) return Effect.asVoid(advance.pipe(Effect.withTracerEnabled(false)))
      return db
        .transaction(
          Effect.andThen(
            db.query(
              `INSERT INTO ${own}.dead_letters (group_id, topic, event_id, source_seq, payload, reason, error, attempts)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8)`,
              [group, topic, row.id, row.seq, row.event, dead.reason, dead.error, dead.attempts],
            ),
            advance,
          ),
        )
        .pipe(
          Effect.asVoid,
          Effect.withSpan("EventBus.deadLetter", {
            attributes: { "messaging.system": "postgresql", "messaging.destination.name": topic, group },
          }),
        )
    }

    // Where reading starts: a shared subscription at its stored offset; a broadcast one after the last row older than
    // `since` (rows are read in commit order), or at the start while the producer has no outbox yet.
    const startPosition = (source: string) =>
      broadcast === undefined
        ? db.query<Position & Record<string, unknown>>(
            `SELECT last_txid::text AS txid, last_seq::text AS seq FROM ${own}.eventbus_offsets
             WHERE group_id = $1 AND topic = $2`,
            [group, topic],
          )
        : db
            .query<Position & Record<string, unknown>>(
              `SELECT o.txid::text AS txid, o.seq::text AS seq FROM ${source}.outbox o
               WHERE o.topic = $1 AND o.created_at < now() - make_interval(secs => $2)
               ORDER BY o.txid DESC, o.seq DESC LIMIT 1`,
              [topic, Duration.toSeconds(Duration.fromInputUnsafe(broadcast.since))],
            )
            .pipe(
              Effect.catchIf(
                (error) => NOT_MIGRATED.has(String((error as { code?: unknown }).code)),
                () => Effect.succeed([]),
              ),
            )

    // `cursor` moves row by row, once the row's offset is stored, so a failure mid-batch resumes after the last row done.
    const poll = (source: string, cursor: { position: Position }) =>
      Effect.gen(function* () {
        const position = cursor.position
        // Untraced: an idle subscription polls ten times a second; the messages it finds get their own traces.
        // Columns are qualified: a bare `ORDER BY txid` would sort by the text alias ("1000" < "999").
        const rows = yield* db
          .query<OutboxRow>(
            `SELECT o.seq::text AS seq, o.txid::text AS txid, o.id::text AS id, o.event::text AS event
             FROM ${source}.outbox o
             WHERE (o.txid, o.seq) > ($2::xid8, $3::bigint) AND o.topic = $1
               AND o.txid < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY o.txid, o.seq LIMIT $4`,
            [topic, position.txid, position.seq, batchSize],
          )
          .pipe(Effect.withTracerEnabled(false))
        for (const row of rows) {
          const outcome = yield* consume({
            consumer: group,
            topic,
            payload: row.event,
            handler,
            retry,
            system: "postgresql",
            inbox: broadcast === undefined,
            attributes: { "eventbus.source_schema": source, "eventbus.seq": row.seq },
          })
          yield* settle(row, deadLetterOf(outcome))
          cursor.position = { txid: row.txid, seq: row.seq }
        }
        return rows.length
      })

    const run = (source: string) =>
      Effect.gen(function* () {
        const [stored] = yield* startPosition(source)
        const cursor = { position: stored ?? { txid: "0", seq: "0" } }
        // A producer that has not started (or migrated) yet has no outbox: nothing to read, not a failure.
        let waiting = false
        const round = poll(source, cursor).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              waiting = false
            }),
          ),
          Effect.catchIf(
            (error) => NOT_MIGRATED.has(String((error as { code?: unknown }).code)),
            () =>
              Effect.gen(function* () {
                if (!waiting) yield* Effect.logInfo(`waiting for ${source}'s outbox to exist`)
                waiting = true
                return 0
              }),
          ),
        )
        return yield* pollLoop(round, {
          what: "event bus poll",
          batchSize,
          pollInterval,
          maxBackoff: "10 seconds",
        })
      }).pipe(Effect.provideService(Db, db), Effect.annotateLogs({ component: "PgEventBus", consumer: group, topic }))

    return Effect.gen(function* () {
      const source = yield* Effect.try({
        try: () => assertIdentifier(schemaOf(topic)),
        catch: (cause) => new EventBusError({ message: `no outbox schema for topic ${topic}`, cause }),
      })
      if (broadcast !== undefined) return source
      yield* db
        .query(`INSERT INTO ${own}.eventbus_offsets (group_id, topic) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [
          group,
          topic,
        ])
        .pipe(
          Effect.mapError((cause) => new EventBusError({ message: `cannot subscribe ${group} to ${topic}`, cause })),
        )
      return source
    }).pipe(
      Effect.withSpan("EventBus.subscribe", { attributes: { "messaging.destination.name": topic, group } }),
      Effect.flatMap((source) => Effect.forkScoped(run(source))),
      Effect.asVoid,
    )
  }

  return EventBus.of({ subscribe })
})

/** The embedded `EventBus`: consumes producers' outbox tables directly, with no relay and no broker. */
export const layer = (options: PgEventBusOptions = {}): Layer.Layer<EventBus, never, Db> =>
  Layer.effect(EventBus, make(options))
