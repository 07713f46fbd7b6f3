import { randomUUID } from "node:crypto"
import { type Cause, Clock, Duration, Effect, FiberSet, Layer, Queue, Schedule, type Scope, Semaphore } from "effect"
import type kafkajs from "kafkajs"
import * as Backoff from "./Backoff.ts"
import * as CloudEvent from "./CloudEvent.ts"
import { Db } from "./Db.ts"
import {
  backoff,
  consumeBatch,
  deadLetterOf,
  EventBus,
  EventBusError,
  type Outcome,
  type RetryPolicy,
  retryPolicy,
  type SubscribeOptions,
} from "./EventBus.ts"
import { disconnect, Kafka, type KafkaError, lifecycle, tryKafka } from "./Kafka.ts"

/** Tuning of the Kafka bus; every field has a default. */
export interface KafkaEventBusOptions {
  /** Default retry policy of this bus's subscriptions. */
  readonly retry?: Partial<RetryPolicy>
  /** Partitions of one subscription handled at the same time (order is kept within a partition); default 1. */
  readonly partitionsConsumedConcurrently?: number
  readonly sessionTimeoutMs?: number
  /** Longest a fetch waits for new messages; also bounds how long closing waits for the fetch in flight. Default 1 s. */
  readonly maxWaitTimeMs?: number
  /** How long closing a subscription waits for the transaction in flight before interrupting it; default 10 s. */
  readonly drainTimeout?: Duration.Input
}

/** Longest wait between attempts to start a subscription's consumer (or to start it again after it stopped). */
const RESTART_MAX_DELAY = Duration.seconds(1)

/** Headers added to a dead letter, next to the original message's own headers. */
export const DlqHeaders = {
  error: "dlq_error",
  reason: "dlq_reason",
  topic: "dlq_original_topic",
  partition: "dlq_original_partition",
  offset: "dlq_original_offset",
  attempts: "dlq_attempts",
  group: "dlq_group",
} as const

/** Builds the bus: one kafkajs consumer per subscription, one shared producer for dead letters. */
export const make = Effect.fnUntraced(function* (options: KafkaEventBusOptions = {}) {
  const db = yield* Db
  const kafka = yield* Kafka
  const dlqProducer = yield* kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
  const dlqLock = yield* Semaphore.make(1)
  let dlqConnected = false

  const sendDeadLetter = (record: kafkajs.ProducerRecord) =>
    dlqLock.withPermit(
      Effect.gen(function* () {
        if (!dlqConnected) {
          yield* tryKafka("connecting the dead-letter producer", () => dlqProducer.connect())
          dlqConnected = true
        }
        yield* tryKafka("publishing a dead letter", () => dlqProducer.send(record))
      }),
    )

  // `topic` is the platform's name, `groupId` and the batch's topic the cluster's (the headers say where it was read).
  const deadLetter = (
    topic: string,
    groupId: string,
    batch: kafkajs.Batch,
    message: kafkajs.KafkaMessage,
    outcome: Outcome,
    retry: RetryPolicy,
  ) => {
    const dead = deadLetterOf(outcome)
    if (dead === undefined) return Effect.void
    const dlq = kafka.topic(CloudEvent.dlqOf(topic))
    const record: kafkajs.ProducerRecord = {
      topic: dlq,
      acks: -1,
      messages: [
        {
          key: message.key,
          value: message.value,
          headers: {
            ...message.headers,
            [DlqHeaders.error]: dead.error,
            [DlqHeaders.reason]: dead.reason,
            [DlqHeaders.topic]: batch.topic,
            [DlqHeaders.partition]: String(batch.partition),
            [DlqHeaders.offset]: message.offset,
            [DlqHeaders.attempts]: String(dead.attempts),
            [DlqHeaders.group]: groupId,
          },
        },
      ],
    }
    // The offset is not committed until the dead letter is stored, so a failing send is retried for as long as it takes.
    return sendDeadLetter(record).pipe(
      Effect.tapError((error) => Effect.logWarning("dead-letter publish failed, retrying", error)),
      Effect.retry(backoff(retry)),
      Effect.withSpan("EventBus.deadLetter", {
        kind: "producer",
        attributes: { "messaging.system": "kafka", "messaging.destination.name": dlq },
      }),
    )
  }

  const drainTimeout = Duration.fromInputUnsafe(options.drainTimeout ?? "10 seconds")

  const subscribe = <R>(subscription: SubscribeOptions<R>): Effect.Effect<void, EventBusError, Scope.Scope | R> => {
    const { topic, group, handler } = subscription
    const retry = retryPolicy(options.retry, subscription.retry)
    // A broadcast subscription reads every partition in a group of its own, from `since` ago, never committed.
    const broadcast = subscription.broadcast
    // The cluster's names (this environment's prefix); `topic` and `group` stay the platform's in logs and spans.
    const physical = kafka.topic(topic)
    const groupId = kafka.group(broadcast === undefined ? group : `${group}.${randomUUID()}`)

    // A broadcast subscription's place in its topic, kept across restarts of its consumer (which resume there): per
    // partition the next offset to handle, and where each partition ended when the subscription first reached the
    // broker. It has caught up once every partition got that far.
    const next = new Map<number, bigint>()
    let end: ReadonlyMap<number, bigint> | undefined
    let caughtUp = false
    const checkCaughtUp = Effect.suspend(() => {
      if (caughtUp || end === undefined) return Effect.void
      for (const [partition, last] of end) if ((next.get(partition) ?? 0n) < last) return Effect.void
      caughtUp = true
      return Effect.andThen(Effect.logDebug("broadcast subscription caught up"), broadcast?.onCaughtUp ?? Effect.void)
    })
    // Once, on the first start that reaches the broker: the first offset of `since` ago on each partition, then each
    // partition's end (asked in that order, so an event published in between is replayed, never skipped).
    const position = (since: Duration.Input) =>
      Effect.gen(function* () {
        if (end !== undefined) return
        const from = (yield* Clock.currentTimeMillis) - Duration.toMillis(Duration.fromInputUnsafe(since))
        const [starts, ends] = yield* kafka.admin(`finding the offsets of ${physical} to replay`, async (admin) => {
          const starts = await admin.fetchTopicOffsetsByTimestamp(physical, from)
          return [starts, await admin.fetchTopicOffsets(physical)] as const
        })
        for (const { partition, offset } of starts) next.set(partition, BigInt(offset))
        end = new Map(ends.map(({ partition, high }) => [partition, BigInt(high)]))
        yield* checkCaughtUp
      })

    // One fetched batch (one partition, in order) through `consumeBatch`: an inbox transaction per run of messages,
    // then per settled message its dead letter (if any) and its offset, which kafkajs commits after the batch. Messages
    // not reached (closing, partition lost) are not resolved and come again.
    const handleBatch = (payload: kafkajs.EachBatchPayload) => {
      const { batch } = payload
      return consumeBatch({
        consumer: group,
        topic,
        handler,
        retry,
        system: "kafka",
        inbox: broadcast === undefined,
        messages: batch.messages.map((message) => ({
          payload: message.value?.toString("utf8") ?? null,
          traceparent: header(message, "traceparent"),
          attributes: {
            "messaging.kafka.partition": batch.partition,
            "messaging.kafka.offset": message.offset,
            "messaging.kafka.message.key": message.key?.toString("utf8"),
          },
        })),
        settled: (settled) =>
          Effect.forEach(
            settled,
            ({ index, outcome }) => {
              const message = batch.messages[index]!
              const resolve = Effect.sync(() => payload.resolveOffset(message.offset))
              if (broadcast === undefined) {
                return Effect.andThen(deadLetter(topic, groupId, batch, message, outcome, retry), resolve)
              }
              const dead = deadLetterOf(outcome)
              const moved = Effect.andThen(
                resolve,
                Effect.suspend(() => {
                  const after = BigInt(message.offset) + 1n
                  if (after > (next.get(batch.partition) ?? 0n)) next.set(batch.partition, after)
                  return checkCaughtUp
                }),
              )
              return dead === undefined
                ? moved
                : Effect.andThen(
                    Effect.logError("event skipped by a broadcast subscription", { group, topic, ...dead }),
                    moved,
                  )
            },
            { discard: true },
          ),
        proceed: () => payload.isRunning() && !payload.isStale(),
      }).pipe(Effect.provideService(Db, db))
    }

    // A rejected eachBatch stops a kafkajs consumer for good, so only shutdown may reject; an unexpected failure
    // (the dead letters' database away after a handler gave up) holds the partition and is retried, loudly, rather than
    // skipping the message; what was settled stays settled (the inbox turns it away).
    const handleRetrying = (payload: kafkajs.EachBatchPayload): Effect.Effect<void, never, R> =>
      handleBatch(payload).pipe(
        Backoff.retryForever(
          Schedule.spaced(retry.maxDelay).pipe(
            Schedule.setInputType<Cause.Cause<unknown>>(),
            Schedule.tap(({ input }) => Effect.logError("unexpected failure consuming a batch, retrying", input)),
          ),
        ),
      )

    // kafkajs heartbeats only between batches; a handler in its retry backoff must not lose the partition. One
    // heartbeat loop per batch, ended with it. A heartbeat refused because the group is rebalancing is ignored here:
    // the batch stops at its next transaction (`isStale`), and the inbox turns away a redelivery elsewhere.
    const guarded = (payload: kafkajs.EachBatchPayload): Effect.Effect<void, never, R> =>
      Effect.gen(function* () {
        yield* Effect.forkChild(
          Effect.promise(() => payload.heartbeat().catch(() => undefined)).pipe(
            Effect.delay("2 seconds"),
            Effect.forever,
          ),
        )
        yield* handleRetrying(payload)
      })

    return Effect.gen(function* () {
      // A name too long for Kafka (with this environment's prefix) is a mistake to report at start, not to retry.
      yield* kafka
        .checkTopics([topic, CloudEvent.dlqOf(topic)])
        .pipe(Effect.mapError((cause) => new EventBusError({ message: cause.message, cause })))
      const consumer = yield* Effect.acquireRelease(
        Effect.sync(() =>
          kafka.client.consumer({
            groupId,
            allowAutoTopicCreation: false,
            maxWaitTimeInMs: options.maxWaitTimeMs ?? 1_000,
            ...(options.sessionTimeoutMs !== undefined ? { sessionTimeout: options.sessionTimeoutMs } : {}),
          }),
        ),
        (consumer) => disconnect(consumer, drainTimeout),
      )
      // Its connect, subscribe and run: closing waits for the one in flight (kafkajs hangs otherwise).
      const calls = lifecycle()
      // Created outside the subscribe span, so message traces do not hang off the subscription's.
      const run = yield* FiberSet.makeRuntimePromise<R>()
      // Closing: stop fetching and let the batch in flight finish its transaction (the rest of it is not started, and
      // what was settled is committed), then interrupt whatever still runs after the drain timeout; an interrupted
      // message is not committed and comes again.
      yield* Effect.addFinalizer(() =>
        calls
          .settled(drainTimeout)
          .pipe(
            Effect.andThen(Effect.interruptible(Effect.promise(() => consumer.stop().catch(() => undefined)))),
            Effect.timeout(drainTimeout),
            Effect.ignore,
          ),
      )
      // kafkajs restarts a consumer that crashed on a retriable error (a broker away) by itself; on any other error it
      // stops for good. Those crashes come here, and the supervisor below starts the consumer again.
      const stopped = yield* Queue.unbounded<string>()
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart) Queue.offerUnsafe(stopped, String(payload.error))
      })
      // A broadcast consumer, joining (again), goes to where the subscription stands on each partition: the seeks are
      // taken before its first fetch.
      if (broadcast !== undefined) {
        consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
          for (const partition of payload.memberAssignment[physical] ?? []) {
            const offset = next.get(partition)
            if (offset !== undefined) consumer.seek({ topic: physical, partition, offset: offset.toString() })
          }
        })
      }
      const start = Effect.gen(function* () {
        yield* kafka.ensureTopics([topic, CloudEvent.dlqOf(topic)])
        if (broadcast !== undefined) yield* position(broadcast.since)
        yield* calls.call("connecting the consumer", () => consumer.connect())
        yield* calls.call(`subscribing to ${physical}`, () =>
          consumer.subscribe({ topics: [physical], fromBeginning: true }),
        )
        yield* calls.call("starting the consumer", () =>
          consumer.run({
            autoCommit: broadcast === undefined,
            partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
            // Offsets are resolved by `handleBatch` as messages are settled, never the whole batch at once.
            eachBatchAutoResolve: false,
            eachBatch: (payload) => run(guarded(payload)),
          }),
        )
      }).pipe(
        Effect.mapError(
          (error: KafkaError) => new EventBusError({ message: `cannot subscribe ${group} to ${topic}`, cause: error }),
        ),
        Effect.withSpan("EventBus.subscribe", { attributes: { "messaging.destination.name": topic, group } }),
      )
      // In the background, so that a broker away at start (or a failure later) delays consumption, not the function:
      // starts are retried every second at most, the consumer started again whenever kafkajs gives up on it.
      const startRetrying = start.pipe(
        Effect.tapError((error) => Effect.logWarning("cannot start consuming, retrying", error)),
        Effect.retry(Backoff.exponential({ base: "200 millis", max: RESTART_MAX_DELAY })),
      )
      yield* Effect.forkScoped(
        startRetrying.pipe(
          Effect.andThen(Queue.take(stopped)),
          Effect.flatMap((error) =>
            Effect.logError("consumer stopped after a non-retriable error, starting it again", { error }),
          ),
          Effect.repeat(Schedule.spaced(RESTART_MAX_DELAY)),
          Effect.annotateLogs({ group, topic }),
        ),
      )
    })
  }

  return EventBus.of({ subscribe })
})

/** The Kafka-backed `EventBus`; offsets are committed only once a message is handled, skipped or dead-lettered. */
export const layer = (options: KafkaEventBusOptions = {}): Layer.Layer<EventBus, never, Db | Kafka> =>
  Layer.effect(EventBus, make(options))

/** Reads a Kafka header as text (the first value when repeated). */
export const header = (message: kafkajs.KafkaMessage, name: string): string | undefined => {
  const value = message.headers?.[name]
  const first = Array.isArray(value) ? value[0] : value
  return first === undefined ? undefined : first.toString()
}
