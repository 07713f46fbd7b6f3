import { Duration, Effect, Layer, type Scope, Semaphore } from "effect"
import * as Backoff from "./Backoff.ts"
import { assertIdentifier, Db } from "./Db.ts"
import {
  consumeBatch,
  deadLetterOf,
  EventBus,
  EventBusError,
  type RetryPolicy,
  retryPolicy,
  type Settled,
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
  /** How long closing a subscription waits for the transaction in flight before interrupting it; default 10 s. */
  readonly drainTimeout?: Duration.Input
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

// Whether `a` comes before `b` in the order subscriptions read the outbox.
const isBefore = (a: Position, b: Position): boolean => {
  const [at, bt] = [BigInt(a.txid), BigInt(b.txid)]
  return at < bt || (at === bt && BigInt(a.seq) < BigInt(b.seq))
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
  const drainTimeout = Duration.fromInputUnsafe(options.drainTimeout ?? "10 seconds")

  const subscribe = <R>(subscription: SubscribeOptions<R>): Effect.Effect<void, EventBusError, Scope.Scope | R> => {
    const { topic, group, handler } = subscription
    const retry = retryPolicy(options.retry, subscription.retry)
    const broadcast = subscription.broadcast
    // Closing lets the transaction in flight commit (a batch's rest is not started) instead of throwing its handled
    // events away: a round holds `turn`, and closing takes it for good once `closing` stops the batch.
    const turn = Semaphore.makeUnsafe(1)
    let closing = false

    // Inside the transaction that commits a run of rows' inbox rows (or after a row handled alone): their dead
    // letters, and the stored offset moved to the last of them, so the offset never runs ahead of what is committed.
    const settleWithin = (rows: ReadonlyArray<OutboxRow>) => (settled: ReadonlyArray<Settled>) =>
      Effect.gen(function* () {
        const dead = settled.flatMap(({ index, outcome }) => {
          const letter = deadLetterOf(outcome)
          return letter === undefined ? [] : [{ row: rows[index]!, ...letter }]
        })
        if (dead.length > 0) {
          yield* db
            .query(
              `INSERT INTO ${own}.dead_letters (group_id, topic, event_id, source_seq, payload, reason, error, attempts)
               SELECT $1, $2, d.event_id, d.source_seq, d.payload::jsonb, d.reason, d.error, d.attempts
               FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::int[])
                 AS d (event_id, source_seq, payload, reason, error, attempts)`,
              [
                group,
                topic,
                dead.map((d) => d.row.id),
                dead.map((d) => d.row.seq),
                dead.map((d) => d.row.event),
                dead.map((d) => d.reason),
                dead.map((d) => d.error),
                dead.map((d) => d.attempts),
              ],
            )
            .pipe(
              Effect.withSpan("EventBus.deadLetter", {
                attributes: { "messaging.system": "postgresql", "messaging.destination.name": topic, group },
              }),
            )
        }
        const last = rows[settled[settled.length - 1]!.index]!
        yield* db
          .query(
            `UPDATE ${own}.eventbus_offsets SET last_txid = $3::xid8, last_seq = $4, updated_at = now()
             WHERE group_id = $1 AND topic = $2`,
            [group, topic, last.txid, last.seq],
          )
          .pipe(Effect.withTracerEnabled(false))
      })

    // A broadcast subscription keeps its position in memory only and logs what it could not handle.
    const skipped = (rows: ReadonlyArray<OutboxRow>, settled: ReadonlyArray<Settled>) =>
      Effect.forEach(
        settled,
        ({ index, outcome }) => {
          const dead = deadLetterOf(outcome)
          return dead === undefined
            ? Effect.void
            : Effect.logError("event skipped by a broadcast subscription", { event_seq: rows[index]!.seq, ...dead })
        },
        { discard: true },
      )

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

    // Where a broadcast subscription has caught up: the topic's last row committed when it started (read after
    // `startPosition`, so a row committed in between is before it). Rows committed later are read in order after it:
    // the poll never passes a row of a transaction still running, so none committed before this one is left behind.
    const endPosition = (source: string) =>
      db
        .query<Position & Record<string, unknown>>(
          `SELECT o.txid::text AS txid, o.seq::text AS seq FROM ${source}.outbox o
           WHERE o.topic = $1 ORDER BY o.txid DESC, o.seq DESC LIMIT 1`,
          [topic],
        )
        .pipe(
          Effect.catchIf(
            (error) => NOT_MIGRATED.has(String((error as { code?: unknown }).code)),
            () => Effect.succeed([]),
          ),
        )

    // `cursor` moves once the rows' offset is committed, so a failure mid-batch resumes after the last row settled.
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
        if (rows.length === 0) return 0
        yield* consumeBatch({
          consumer: group,
          topic,
          handler,
          retry,
          system: "postgresql",
          inbox: broadcast === undefined,
          messages: rows.map((row) => ({
            payload: row.event,
            attributes: { "eventbus.source_schema": source, "eventbus.seq": row.seq },
          })),
          ...(broadcast === undefined ? { settleWithin: settleWithin(rows) } : {}),
          settled: (settled) =>
            Effect.andThen(
              broadcast === undefined ? Effect.void : skipped(rows, settled),
              Effect.sync(() => {
                const last = rows[settled[settled.length - 1]!.index]!
                cursor.position = { txid: last.txid, seq: last.seq }
              }),
            ),
          proceed: () => !closing,
        })
        return rows.length
      })

    const run = (source: string) =>
      Effect.gen(function* () {
        // Retried: the database away at start delays the subscription, it does not end it.
        const [stored, last] = yield* Effect.all([
          Effect.map(startPosition(source), ([row]) => row),
          broadcast === undefined ? Effect.succeed(undefined) : Effect.map(endPosition(source), ([row]) => row),
        ]).pipe(
          Effect.tapError((error) => Effect.logWarning("cannot find where to start reading, retrying", error)),
          Effect.retry(Backoff.exponential({ base: "200 millis", max: "10 seconds" })),
        )
        const cursor = { position: stored ?? { txid: "0", seq: "0" } }
        let caughtUp = broadcast === undefined
        const checkCaughtUp = Effect.suspend(() => {
          if (caughtUp || (last !== undefined && isBefore(cursor.position, last))) return Effect.void
          caughtUp = true
          return broadcast?.onCaughtUp ?? Effect.void
        })
        yield* checkCaughtUp
        // A producer that has not started (or migrated) yet has no outbox: nothing to read, not a failure.
        let waiting = false
        const round = turn.withPermit(poll(source, cursor)).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              waiting = false
            }),
          ),
          Effect.tap(() => checkCaughtUp),
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
      // Added after the fork, so it runs before the fork's own finalizer interrupts the loop.
      Effect.andThen(
        Effect.addFinalizer(() =>
          Effect.suspend(() => {
            closing = true
            return turn.take(1).pipe(Effect.timeout(drainTimeout), Effect.ignore)
          }),
        ),
      ),
      Effect.asVoid,
    )
  }

  return EventBus.of({ subscribe })
})

/** The embedded `EventBus`: consumes producers' outbox tables directly, with no relay and no broker. */
export const layer = (options: PgEventBusOptions = {}): Layer.Layer<EventBus, never, Db> =>
  Layer.effect(EventBus, make(options))
