import { type Cause, Context, Duration, Effect, Layer, Metric, Schedule } from "effect"
import type kafkajs from "kafkajs"
import type pg from "pg"
import * as Backoff from "./Backoff.ts"
import * as CloudEvent from "./CloudEvent.ts"
import { assertIdentifier, Db, DbError } from "./Db.ts"
import { Kafka, type KafkaError, tryKafka } from "./Kafka.ts"
import { channelOf } from "./Outbox.ts"
import { makeWakeUp, pollLoop, type WakeUp } from "./PollLoop.ts"

/** Tuning of the relay; the defaults suit a service publishing up to several thousand events a second. */
export interface OutboxRelayOptions {
  /** Most rows sent per Kafka batch; default 500. */
  readonly batchSize?: number
  /**
   * Most bytes (keys, values and headers) sent per Kafka batch, whatever the rows; default 512 KiB. A record batch
   * per partition is refused for good above the broker's `message.max.bytes` (1 MiB by default) and events may be up
   * to 256 KiB (`Outbox.MAX_EVENT_BYTES`), so the bound keeps a batch of large events under it with room for the
   * records' own overhead; the first row of a batch is always sent.
   */
  readonly maxBatchBytes?: number
  /**
   * Wait between polls when the outbox is drained; default 100 ms. With `listen`, an idle relay wakes as soon as a
   * publishing transaction commits; the poll stays for rows whose notification it missed.
   */
  readonly pollInterval?: Duration.Input
  /**
   * LISTEN on the outbox's channel (`Outbox.channelOf`), on a connection of the pool held for it, and wake at each
   * notification `Outbox.publish` sends; default true. Notifications are only a hint: rows written while the
   * connection was down (or by anything that does not notify) are found by the poll.
   */
  readonly listen?: boolean
  /** Longest wait between retries while Kafka or Postgres is failing; default 1 s (events flow soon after a return). */
  readonly maxBackoff?: Duration.Input
  /** Topics (and their `.dlq`) created at start; topics met later in the outbox are created on first use. */
  readonly topics?: ReadonlyArray<string>
}

interface OutboxRow {
  readonly seq: string
  readonly topic: string
  readonly key: string | null
  readonly event: CloudEvent.CloudEvent
}

const published = Metric.counter("outbox_relay_published_total", { description: "Outbox rows published to Kafka" })

/** Publishes a service's outbox to Kafka in `seq` order; at-least-once, consumers dedupe by event id. */
export class OutboxRelay extends Context.Service<
  OutboxRelay,
  {
    /** Sends the next batch of unpublished rows and marks them published; 0 when none or another relay is active. */
    publishBatch(): Effect.Effect<number, DbError | KafkaError>
  }
>()("shared/OutboxRelay") {
  /** The relay plus its background loop, which runs until the layer's scope closes. */
  static readonly layer = (options: OutboxRelayOptions = {}) =>
    Layer.effect(
      OutboxRelay,
      Effect.gen(function* () {
        const db = yield* Db
        const kafka = yield* Kafka
        const schema = assertIdentifier(db.schema)
        const batchSize = options.batchSize ?? 500
        const maxBatchBytes = options.maxBatchBytes ?? 512 * 1024
        const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? "100 millis")
        // Bounded retries: a failed send leaves the batch unmarked and the loop below retries it with its own backoff,
        // rather than kafkajs retrying for as long as Kafka is away.
        const producer = yield* kafka.producer({
          idempotent: true,
          maxInFlightRequests: 1,
          allowAutoTopicCreation: false,
          retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1_000 },
        })
        let connected = false

        const send = (rows: ReadonlyArray<{ readonly topic: string; readonly message: kafkajs.Message }>) =>
          Effect.gen(function* () {
            const topics = [...new Set(rows.map((row) => row.topic))]
            yield* kafka.ensureTopics(topics.flatMap((topic) => [topic, CloudEvent.dlqOf(topic)]))
            if (!connected) {
              yield* tryKafka("connecting the producer", () => producer.connect())
              connected = true
            }
            // The outbox holds the platform's topic names; the cluster's carry this environment's prefix.
            const topicMessages = topics.map((topic) => ({
              topic: kafka.topic(topic),
              messages: rows.filter((row) => row.topic === topic).map((row) => row.message),
            }))
            yield* tryKafka("publishing to Kafka", () => producer.sendBatch({ acks: -1, topicMessages }))
          }).pipe(
            Effect.tapError(() =>
              Effect.suspend(() => {
                connected = false
                return Effect.promise(() => producer.disconnect().catch(() => undefined))
              }),
            ),
          )

        // The last batch was cut short by bytes: more rows wait, so the loop goes on without its idle pause.
        let cutShort = false
        // Another relay holds the lock: this one asks again after a poll interval, not at every notification.
        let standby = false
        const publishBatch = Effect.fn("OutboxRelay.publishBatch", {
          kind: "producer",
          attributes: { "messaging.system": "kafka", "messaging.operation.type": "send", "db.namespace": schema },
        })(
          function* () {
            // No transaction spans the Kafka send: a session advisory lock (one active relay per schema keeps topic
            // order equal to outbox order) and short autocommit statements. An open transaction here would hold the
            // cluster's snapshot xmin back for as long as Kafka takes, stalling the Postgres-backed bus.
            return yield* db.withConnection((client) => {
              const sql = <A extends Record<string, unknown>>(text: string, params?: Array<unknown>) =>
                Effect.tryPromise({
                  try: () => client.query<A>(text, params),
                  catch: (cause) => new DbError({ message: `outbox relay: ${String(cause)}`, cause }),
                }).pipe(Effect.map((result) => result.rows))
              // A failed unlock must not return the locked session to the pool: dying makes withConnection destroy it.
              const unlock = Effect.orDie(sql("SELECT pg_advisory_unlock(hashtext($1))", [`outbox_relay:${schema}`]))
              return Effect.gen(function* () {
                const [lock] = yield* sql<{ locked: boolean }>("SELECT pg_try_advisory_lock(hashtext($1)) AS locked", [
                  `outbox_relay:${schema}`,
                ])
                standby = !lock?.locked
                if (standby) return 0
                return yield* Effect.gen(function* () {
                  const rows = yield* sql<OutboxRow & Record<string, unknown>>(
                    `SELECT seq, topic, key, event FROM ${schema}.outbox
                     WHERE published_at IS NULL ORDER BY seq LIMIT $1`,
                    [batchSize],
                  )
                  if (rows.length === 0) return 0
                  // The rows in order up to the byte bound; the rest wait for the next round, which comes at once.
                  const batch: Array<{
                    readonly seq: string
                    readonly topic: string
                    readonly message: kafkajs.Message
                  }> = []
                  let bytes = 0
                  for (const row of rows) {
                    const message = toMessage(row)
                    const size = messageBytes(message)
                    if (batch.length > 0 && bytes + size > maxBatchBytes) break
                    bytes += size
                    batch.push({ seq: row.seq, topic: row.topic, message })
                  }
                  cutShort = batch.length < rows.length
                  yield* send(batch)
                  yield* sql(`UPDATE ${schema}.outbox SET published_at = now() WHERE seq = ANY($1::bigint[])`, [
                    batch.map((row) => row.seq),
                  ])
                  yield* Effect.annotateCurrentSpan("outbox_relay.batch.bytes", bytes)
                  return batch.length
                }).pipe(Effect.ensuring(unlock))
              })
            })
          },
          Effect.tap((count) => Effect.annotateCurrentSpan("messaging.batch.message_count", count)),
        )

        // Untraced and cheap (partial index): an idle relay asks ten times a second and opens no batch span.
        const pending = db
          .query<{ pending: boolean }>(
            `SELECT EXISTS (SELECT 1 FROM ${schema}.outbox WHERE published_at IS NULL) AS pending`,
          )
          .pipe(
            Effect.map(([row]) => row?.pending === true),
            Effect.withTracerEnabled(false),
          )

        const round = Effect.flatMap(pending, (some) =>
          some
            ? publishBatch()
            : Effect.sync(() => {
                standby = false
                return 0
              }),
        ).pipe(
          Effect.tap((count) => (count > 0 ? Metric.update(published, count) : Effect.void)),
          Effect.map((count) => (count > 0 && cutShort ? batchSize : count)),
          Effect.tap(() => (standby ? Effect.sleep(pollInterval) : Effect.void)),
        )
        const wakeUp = options.listen === false ? undefined : makeWakeUp()
        const loop = pollLoop(round, {
          what: "outbox relay",
          batchSize,
          pollInterval,
          maxBackoff: options.maxBackoff ?? "1 second",
          ...(wakeUp === undefined ? {} : { wakeUp }),
        }).pipe(Effect.annotateLogs({ component: "OutboxRelay", schema }))
        if (wakeUp !== undefined) {
          yield* Effect.forkScoped(
            listen(db, channelOf(schema), wakeUp).pipe(Effect.annotateLogs({ component: "OutboxRelay", schema })),
          )
        }

        // A topic name too long for Kafka with this environment's prefix stops the start; creating the topics happens in
        // the background: a slow or absent broker must not hold the function's start (sends create topics anyway).
        const known = (options.topics ?? []).flatMap((topic) => [topic, CloudEvent.dlqOf(topic)])
        yield* Effect.orDie(kafka.checkTopics(known))
        const createTopics =
          known.length > 0
            ? kafka
                .ensureTopics(known)
                .pipe(Effect.catch((error) => Effect.logWarning("could not create topics at start", error)))
            : Effect.void
        yield* Effect.forkScoped(Effect.andThen(createTopics, loop))
        return OutboxRelay.of({ publishBatch })
      }),
    )
}

/**
 * Holds a pooled connection LISTENing on `channel` and signals `wakeUp` at each notification, for as long as the
 * scope lives; when the connection fails (a server restart) it is destroyed and LISTEN taken again after a backoff.
 * Meanwhile the relay polls as it would without. Once listening, one signal: rows written while it was not are looked
 * for at once.
 */
const listen = (db: Db["Service"], channel: string, wakeUp: WakeUp) => {
  const session = db.withConnection((client) =>
    Effect.callback<never, DbError>((resume) => {
      const fail = (cause: unknown) =>
        resume(Effect.fail(new DbError({ message: `outbox relay: listening on ${channel}: ${String(cause)}`, cause })))
      const onNotification = (message: pg.Notification) => {
        if (message.channel === channel) wakeUp.signal()
      }
      const onEnd = () => fail(new Error("connection ended"))
      client.on("notification", onNotification)
      client.on("error", fail)
      client.on("end", onEnd)
      client.query(`LISTEN "${channel}"`).then(() => wakeUp.signal(), fail)
      // The connection is destroyed when this ends (interrupted or failed: withConnection does not return it to the
      // pool), which ends the LISTEN; its late errors must still not go unhandled.
      return Effect.sync(() => {
        client.off("notification", onNotification)
        client.off("end", onEnd)
        client.off("error", fail)
        client.on("error", () => {})
      })
    }),
  )
  const backoff = Backoff.exponential({ base: "1 second", max: "30 seconds" }).pipe(
    Schedule.setInputType<Cause.Cause<DbError>>(),
    Schedule.tap(({ input, attempt }) =>
      Effect.logWarning("outbox relay: not listening for notifications, polling only", input, { retry: attempt }),
    ),
  )
  return session.pipe(Backoff.retryForever(backoff))
}

const toMessage = (row: OutboxRow): kafkajs.Message => ({
  key: row.key,
  value: JSON.stringify(row.event),
  headers: {
    "content-type": "application/cloudevents+json",
    ce_id: row.event.id,
    ce_type: row.event.type,
    ...(row.event.traceparent !== undefined ? { traceparent: row.event.traceparent } : {}),
  },
})

// What a message weighs in a record batch, near enough: key, value and headers (records add a few bytes each).
const messageBytes = (message: kafkajs.Message): number => {
  let bytes = byteLength(message.key) + byteLength(message.value)
  for (const [name, value] of Object.entries(message.headers ?? {}))
    bytes += Buffer.byteLength(name) + byteLength(value)
  return bytes
}

const byteLength = (value: unknown): number =>
  typeof value === "string" ? Buffer.byteLength(value) : Buffer.isBuffer(value) ? value.length : 0
