import { Cause, Context, type Duration, Effect, Metric, Option, Predicate, Schema, Scope } from "effect"
import { Headers, HttpTraceContext } from "effect/http"
import * as Backoff from "./Backoff.ts"
import * as CloudEvent from "./CloudEvent.ts"
import { assertIdentifier, Db, type DbError, IN_FAILED_TRANSACTION } from "./Db.ts"
import { ErrorBus } from "./ErrorBus.ts"

/** How a failing handler is retried before its event is dead-lettered: `maxAttempts` runs, doubling delays. */
export interface RetryPolicy {
  readonly maxAttempts: number
  readonly baseDelay: Duration.Input
  readonly maxDelay: Duration.Input
}

/** Five attempts, 200 ms doubling, each wait capped at 5 s. */
export const defaultRetry: RetryPolicy = { maxAttempts: 5, baseDelay: "200 millis", maxDelay: "5 seconds" }

/** The waits between retries under `policy`: `baseDelay`, doubling, each at most `maxDelay` (unbounded in number). */
export const backoff = (policy: RetryPolicy) => Backoff.exponential({ base: policy.baseDelay, max: policy.maxDelay })

/** What a consumer asks for: the topic, its consumer group (also its inbox name) and the handler. */
export interface SubscribeOptions<R = never> {
  readonly topic: string
  readonly group: string
  /**
   * The event types of `topic` the handler acts on (`"*"`: every type); the others are passed over without it. A
   * function's bus requires them and checks each against its manifest's `events.consumes` (`Kernel.declaredConsumer`).
   */
  readonly types?: ReadonlyArray<string> | "*"
  /** Runs inside the inbox transaction: its `Db` queries commit or roll back together with the inbox row. */
  readonly handler: (event: CloudEvent.CloudEvent) => Effect.Effect<void, unknown, R>
  /** Overrides the bus's retry policy for this subscription. */
  readonly retry?: Partial<RetryPolicy>
  /**
   * Every instance of the consumer receives every event, for a view kept in process memory (revoked sessions): no
   * shared position (Kafka: a consumer group of this process's own, never committed), no inbox (the handler must be
   * idempotent and gets no transaction), no dead letters (a failing event is logged and skipped). The subscription
   * starts with the events published within `since` before it (by the time they reached the outbox, or Kafka).
   */
  readonly broadcast?: Broadcast
}

/** A broadcast subscription's replay: how far back it starts, and who learns when it has caught up. */
export interface Broadcast {
  readonly since: Duration.Input
  /**
   * Run once every event published before the subscription started (at least back to `since`) has been handled:
   * from then on the view is complete, give or take the bus's delay. `subscribe` itself returns at once (a broker
   * away must not hold a function's start), so a view that must not answer incomplete waits for this.
   */
  readonly onCaughtUp?: Effect.Effect<void>
}

/** A subscription could not be started (broker or database unreachable, bad topic name). */
export class EventBusError extends Schema.TaggedError<EventBusError>()("EventBusError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** The consumer side of the event bus; Kafka in production, the producers' outbox tables when embedded. */
export class EventBus extends Context.Service<
  EventBus,
  {
    /** Starts consuming in the background; consumption stops when the caller's scope closes. */
    subscribe<R = never>(options: SubscribeOptions<R>): Effect.Effect<void, EventBusError, Scope.Scope | R>
  }
>()("shared/EventBus") {}

/** How consuming one message ended; the two failures go to the dead-letter destination. */
export type Outcome =
  | { readonly _tag: "Handled"; readonly attempts: number }
  | { readonly _tag: "Duplicate" }
  | { readonly _tag: "Failed"; readonly attempts: number; readonly error: string }
  | { readonly _tag: "Undecodable"; readonly error: string }

/** What a bus stores with a dead letter: why, the last error, and how many attempts were made (none when undecodable). */
export const deadLetterOf = (
  outcome: Outcome,
): { readonly reason: string; readonly error: string; readonly attempts: number } | undefined =>
  outcome._tag === "Failed"
    ? { reason: "handler-failed", error: outcome.error, attempts: outcome.attempts }
    : outcome._tag === "Undecodable"
      ? { reason: "undecodable", error: outcome.error, attempts: 0 }
      : undefined

// The handler failed (as opposed to the inbox bookkeeping around it): counts as an attempt.
class HandlerFailed extends Schema.TaggedError<HandlerFailed>()("HandlerFailed", { cause: Schema.Defect() }) {}

// A failed attempt, counted against `maxAttempts`: which attempt it was, its cause, and the dead letter's text for it.
interface HandlerFault {
  readonly attempts: number
  readonly cause: Cause.Cause<unknown>
  readonly error: string
}

// SQLSTATE classes: 08 connection exception, 57P operator intervention (shutdown, crash recovery); node-level
// socket errors carry no SQLSTATE. These mean "the database is away", not "this event is bad".
const UNAVAILABLE = /^(08|57P)|^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT)$/

const dbCodeOf = (value: unknown): string | undefined =>
  Predicate.hasProperty(value, "_tag") && value._tag === "DbError" && Predicate.hasProperty(value, "code")
    ? (value.code as string | undefined)
    : undefined

// A handler failure that is really the database being unreachable (a DbError with a connection-class code).
const isUnavailable = (cause: unknown): boolean =>
  Cause.isCause(cause) &&
  cause.reasons.some((reason) => {
    const error = reason._tag === "Fail" ? reason.error : reason._tag === "Die" ? reason.defect : undefined
    const code = dbCodeOf(error)
    return code !== undefined && UNAVAILABLE.test(code)
  })

// A COMMIT refused because of what the handler wrote: integrity (23) or serialization/deadlock (40), or work the
// handler went on with after catching a failed statement (25P02: Db refuses to commit the aborted transaction).
const isDataError = (error: unknown): boolean => {
  const code = dbCodeOf(error)
  return code !== undefined && (/^(23|40)/.test(code) || code === IN_FAILED_TRANSACTION)
}

// The handler's fault (its failure, or a COMMIT refused for what it wrote) counts as an attempt; the database being
// unreachable does not, whether the handler or the bookkeeping met it. The fault's cause, else undefined.
const handlerFault = (cause: Cause.Cause<HandlerFailed | DbError>): Cause.Cause<unknown> | undefined => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isNone(failure)) return undefined
  if (failure.value._tag === "HandlerFailed") {
    return isUnavailable(failure.value.cause) ? undefined : (failure.value.cause as Cause.Cause<unknown>)
  }
  return isDataError(failure.value) ? Cause.fail(failure.value) : undefined
}

const consumed = Metric.counter("eventbus_events_consumed_total", { description: "Events consumed, by outcome" })

// Counted once per settled group, not once per event.
const count = (settled: ReadonlyArray<Settled>) =>
  Effect.suspend(() => {
    const byOutcome = new Map<Outcome["_tag"], number>()
    for (const { outcome } of settled) byOutcome.set(outcome._tag, (byOutcome.get(outcome._tag) ?? 0) + 1)
    return Effect.forEach(byOutcome, ([outcome, n]) => Metric.update(Metric.withAttributes(consumed, { outcome }), n), {
      discard: true,
    })
  })

const decodeEnvelope = Schema.decodeUnknownEffect(CloudEvent.CloudEvent)

// JSON text is parsed once, before the span starts, so even a rejected envelope joins its producer's trace.
const parse = (payload: unknown): { readonly value: unknown } | { readonly error: string } => {
  if (typeof payload !== "string") return { value: payload }
  try {
    return { value: JSON.parse(payload) }
  } catch (cause) {
    return { error: `not JSON: ${cause instanceof Error ? cause.message : String(cause)}` }
  }
}

const traceparentOf = (value: unknown): string | undefined => {
  const traceparent = Predicate.isObject(value) && "traceparent" in value ? value.traceparent : undefined
  return Predicate.isString(traceparent) ? traceparent : undefined
}

const parentOf = (traceparent: string | undefined) =>
  traceparent === undefined
    ? undefined
    : Option.getOrUndefined(HttpTraceContext.w3c(Headers.fromRecordUnsafe({ traceparent })))

// A dead letter's error text: the first error's name and message, else the pretty cause, bounded.
const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  const text = error instanceof Error ? `${error.name}: ${error.message}` : Cause.pretty(cause)
  return text.slice(0, 4000)
}

/** What every message of a subscription shares, as a bus hands its messages to `consume` / `consumeBatch`. */
interface Subscription<R> {
  readonly consumer: string
  readonly topic: string
  readonly handler: (event: CloudEvent.CloudEvent) => Effect.Effect<void, unknown, R>
  readonly retry: RetryPolicy
  readonly system: "kafka" | "postgresql"
  /** False for a broadcast subscription: the handler runs without the inbox and its transaction. Default true. */
  readonly inbox?: boolean
}

/** One message as a bus hands it over. */
export interface Message {
  /** JSON text (Kafka) or an already parsed value (a jsonb outbox row). */
  readonly payload: unknown
  /** Trace context from the transport, used when the envelope carries none. */
  readonly traceparent?: string | undefined
  /** Extra span attributes (partition, offset, seq). */
  readonly attributes?: Record<string, unknown>
}

/** One message and its subscription, for `consume`. */
export interface Delivery<R> extends Subscription<R>, Message {}

/** A message of a batch whose outcome is final (committed with its inbox row, or dead-lettered). */
export interface Settled {
  /** Its place in `Batch.messages`. */
  readonly index: number
  readonly outcome: Outcome
}

/** Messages of one partition (Kafka) or one poll (pg bus), in order, and what the bus does as they are settled. */
export interface Batch<R, ES = never, RS = never> extends Subscription<R> {
  readonly messages: ReadonlyArray<Message>
  /**
   * Runs inside the transaction that commits the inbox rows of `settled` (the pg bus: their dead letters and its
   * offset, atomically with them); for a message handled alone, in a transaction of its own after its outcome.
   */
  readonly settleWithin?: (settled: ReadonlyArray<Settled>) => Effect.Effect<void, DbError>
  /** Runs once `settled` are committed, in order: the Kafka bus's dead letters, then its offsets. */
  readonly settled?: (settled: ReadonlyArray<Settled>) => Effect.Effect<void, ES, RS>
  /** Asked before each transaction: false stops the batch there (closing, partition lost); the rest comes again. */
  readonly proceed?: () => boolean
}

/**
 * Handler calls in one inbox transaction at most. A handler that writes does so under a savepoint, and a transaction
 * with more than 64 subtransactions that wrote (Postgres's PGPROC_MAX_CACHED_SUBXIDS) overflows its snapshot cache,
 * slowing every session's visibility checks until it ends.
 */
export const EVENTS_PER_TRANSACTION = 64

// A message parsed and decoded once, before any attempt.
type Decoded =
  | {
      readonly _tag: "Event"
      readonly index: number
      readonly event: CloudEvent.CloudEvent
      readonly message: Message
      readonly parent: ReturnType<typeof parentOf>
    }
  | { readonly _tag: "Undecodable"; readonly index: number; readonly outcome: Outcome }

const decode = (message: Message, index: number): Effect.Effect<Decoded> => {
  const parsed = parse(message.payload)
  const parent = parentOf(("value" in parsed ? traceparentOf(parsed.value) : undefined) ?? message.traceparent)
  return Effect.result(
    "value" in parsed
      ? Effect.mapError(decodeEnvelope(parsed.value), (error) => error.message)
      : Effect.fail(parsed.error),
  ).pipe(
    Effect.flatMap((decoded): Effect.Effect<Decoded> => {
      if (decoded._tag === "Success")
        return Effect.succeed({ _tag: "Event", index, event: decoded.success, message, parent })
      const outcome: Outcome = { _tag: "Undecodable", error: `not a CloudEvent: ${decoded.failure}` }
      return Effect.as(Effect.logWarning("undecodable event, dead-lettering", { error: outcome.error }), {
        _tag: "Undecodable",
        index,
        outcome,
      })
    }),
  )
}

// The span of one event's handling: a child of its producer's trace, else a trace of its own, never of the
// long-lived subscription. No stack trace: it is made for every event, and its name says where it comes from.
const eventSpan =
  <R>(subscription: Subscription<R>, decoded: Extract<Decoded, { _tag: "Event" }>) =>
  <A, E, R2>(effect: Effect.Effect<A, E, R2>): Effect.Effect<A, E, R2> =>
    Effect.withSpan(effect, "EventBus.consume", {
      kind: "consumer",
      ...(decoded.parent !== undefined ? { parent: decoded.parent } : { root: true }),
      captureStackTrace: false,
      attributes: {
        "messaging.system": subscription.system,
        "messaging.operation.type": "process",
        "messaging.destination.name": subscription.topic,
        "messaging.consumer.group.name": subscription.consumer,
        "messaging.message.id": decoded.event.id,
        "cloudevents.event_type": decoded.event.type,
        ...decoded.message.attributes,
      },
    })

// The handler's own failure, as opposed to the bookkeeping around it; interruption stays interruption.
const runHandler = <R>(subscription: Subscription<R>, event: CloudEvent.CloudEvent) =>
  Effect.suspend(() => subscription.handler(event)).pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.fail(new HandlerFailed({ cause })),
    ),
  )

const waitOf = (policy: RetryPolicy, attempt: number) =>
  Backoff.delayAt({ base: policy.baseDelay, max: policy.maxDelay }, attempt)

/**
 * One event alone, through every attempt: per attempt one `Db.transaction` that inserts `(consumer, event id)` into
 * the inbox and runs the handler only when the row is new, so a failure rolls the inbox row back. Handler faults are
 * retried with backoff until `retry.maxAttempts` attempts have failed (`failed`: one already did, in a batch), then
 * the event is dead-lettered; the database being away is retried until it answers, with one backoff for the whole
 * event that a handler fault in between does not start again from `baseDelay`.
 */
const handleAlone = <R>(
  subscription: Subscription<R>,
  decoded: Extract<Decoded, { _tag: "Event" }>,
  failed?: HandlerFault,
): Effect.Effect<Outcome, never, Db | R> =>
  Effect.gen(function* () {
    const db = yield* Db
    const { retry } = subscription
    const run = runHandler(subscription, decoded.event)
    const attempt =
      subscription.inbox === false
        ? Effect.as(run, true)
        : db.transaction(
            Effect.gen(function* () {
              const inserted = yield* db.query(
                `INSERT INTO ${assertIdentifier(db.schema)}.inbox (consumer, event_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING RETURNING 1`,
                [subscription.consumer, decoded.event.id],
              )
              if (inserted.length === 0) return false
              yield* run
              return true
            }),
          )
    // A fault is waited for once, as it is met; an outage in between waits on its own backoff and leaves it standing.
    // The last one is reported to the error bus (inside the event's span: its trace and span ids) as it is logged.
    const afterFault = (fault: HandlerFault) =>
      fault.attempts >= retry.maxAttempts
        ? Effect.logError("handler failed, dead-lettering", fault.cause, { attempts: fault.attempts }).pipe(
            Effect.andThen(
              ErrorBus.use((errors) =>
                errors.capture({
                  cause: fault.cause,
                  origin: "event",
                  route: `event:${subscription.consumer}/${decoded.event.type}`,
                  tags: { consumer: subscription.consumer, topic: subscription.topic, event_type: decoded.event.type },
                }),
              ),
            ),
            Effect.as({ _tag: "Failed", attempts: fault.attempts, error: fault.error } satisfies Outcome),
          )
        : Effect.logWarning("handler failed, retrying", { attempt: fault.attempts, error: fault.error }).pipe(
            Effect.andThen(Effect.sleep(waitOf(retry, fault.attempts))),
            Effect.as(undefined),
          )
    let attempts = 0
    if (failed !== undefined) {
      attempts = failed.attempts
      const given = yield* afterFault(failed)
      if (given !== undefined) return given
    }
    let outages = 0
    for (;;) {
      const exit = yield* Effect.exit(attempt)
      if (exit._tag === "Success") {
        return (exit.value ? { _tag: "Handled", attempts: attempts + 1 } : { _tag: "Duplicate" }) satisfies Outcome
      }
      if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
      const cause = handlerFault(exit.cause)
      if (cause !== undefined) {
        attempts++
        const given = yield* afterFault({ attempts, cause, error: describeCause(cause) })
        if (given !== undefined) return given
        continue
      }
      outages++
      yield* Effect.logWarning("inbox transaction failed, retrying", exit.cause, { retry: outages })
      yield* Effect.sleep(waitOf(retry, outages))
    }
  }).pipe(
    eventSpan(subscription, decoded),
    Effect.tap((outcome) => Effect.annotateCurrentSpan("eventbus.outcome", outcome._tag)),
  )

/**
 * Consumes one message with the semantics every bus shares: decode (undecodable → dead letter at once), then the
 * event alone through its attempts (see `consumeBatch` for the same over many messages in one transaction).
 */
export const consume = <R>(delivery: Delivery<R>): Effect.Effect<Outcome, never, Db | R> =>
  decode(delivery, 0).pipe(
    Effect.flatMap((decoded) =>
      decoded._tag === "Undecodable" ? Effect.succeed(decoded.outcome) : handleAlone(delivery, decoded),
    ),
    Effect.tap((outcome) => count([{ index: 0, outcome }])),
    Effect.annotateLogs({ consumer: delivery.consumer, topic: delivery.topic }),
  )

// How one inbox transaction over a run of messages ended: what it settled, and the message whose handler failed
// (its inbox row and the later ones' taken back), if one did.
interface Round {
  readonly settled: ReadonlyArray<Settled>
  readonly failed?: { readonly decoded: Extract<Decoded, { _tag: "Event" }>; readonly fault: HandlerFault }
}

/**
 * Consumes a batch of one partition's messages, in order, with the guarantees of `consume` and far fewer round
 * trips: one transaction for up to `EVENTS_PER_TRANSACTION` messages inserts their inbox rows at once
 * (`INSERT … SELECT unnest(…) ON CONFLICT DO NOTHING RETURNING event_id`), runs the handlers of the new ones in order,
 * each under a savepoint, and commits once, with the bus's `settleWithin`. A failing handler ends the transaction
 * there: what came before commits, its own writes and the later messages' inbox rows are taken back, and the event
 * goes through its remaining attempts alone (`consume`'s retries and dead letter) before the batch goes on after it.
 * The database being away is retried until it answers. Broadcast subscriptions (no inbox) take each message alone.
 */
export const consumeBatch = <R, ES = never, RS = never>(
  batch: Batch<R, ES, RS>,
): Effect.Effect<void, DbError | ES, Db | R | RS> =>
  Effect.gen(function* () {
    const db = yield* Db
    const inbox = `${assertIdentifier(db.schema)}.inbox`
    const decoded = yield* Effect.forEach(batch.messages, decode)

    const settle = (settled: ReadonlyArray<Settled>) =>
      Effect.andThen(count(settled), batch.settled === undefined ? Effect.void : batch.settled(settled))

    // One transaction over `run` (at most EVENTS_PER_TRANSACTION messages from the batch's next one on).
    const round = (run: ReadonlyArray<Decoded>) =>
      db.transaction(
        Effect.gen(function* () {
          const ids = [...new Set(run.flatMap((d) => (d._tag === "Event" ? [d.event.id] : [])))]
          const inserted =
            ids.length === 0
              ? []
              : yield* db.query<{ event_id: string }>(
                  `INSERT INTO ${inbox} (consumer, event_id) SELECT $1, unnest($2::text[])
                   ON CONFLICT DO NOTHING RETURNING event_id`,
                  [batch.consumer, ids],
                )
          // Taken out as each is handled: a second copy of an event in the same run is a duplicate.
          const fresh = new Set(inserted.map((row) => row.event_id))
          const settled: Array<Settled> = []
          let failed: Round["failed"]
          for (const d of run) {
            if (d._tag === "Undecodable") {
              settled.push({ index: d.index, outcome: d.outcome })
              continue
            }
            if (!fresh.delete(d.event.id)) {
              settled.push({ index: d.index, outcome: { _tag: "Duplicate" } })
              continue
            }
            const exit = yield* Effect.exit(
              db.savepoint(runHandler(batch, d.event)).pipe(
                eventSpan(batch, d),
                Effect.tap(() => Effect.annotateCurrentSpan("eventbus.outcome", "Handled")),
              ),
            )
            if (exit._tag === "Success") {
              settled.push({ index: d.index, outcome: { _tag: "Handled", attempts: 1 } })
              continue
            }
            // Anything but the handler's own fault (the database away, interruption) fails the whole transaction.
            const cause = handlerFault(exit.cause)
            if (cause === undefined) return yield* Effect.failCause(exit.cause)
            failed = { decoded: d, fault: { attempts: 1, cause, error: describeCause(cause) } }
            // Its inbox row and those of the events after it go back: they are handled anew, after it.
            yield* db.query(`DELETE FROM ${inbox} WHERE consumer = $1 AND event_id = ANY($2::text[])`, [
              batch.consumer,
              [d.event.id, ...fresh],
            ])
            break
          }
          if (batch.settleWithin !== undefined && settled.length > 0) yield* batch.settleWithin(settled)
          return failed === undefined ? { settled } : { settled, failed }
        }),
      )

    let next = 0
    let outages = 0
    // After a round whose COMMIT was refused for what a handler wrote, its events go alone up to here.
    let aloneUntil = 0
    while (next < decoded.length) {
      if (batch.proceed !== undefined && !batch.proceed()) return
      const d = decoded[next]!
      if (batch.inbox === false) {
        const outcome = d._tag === "Undecodable" ? d.outcome : yield* handleAlone(batch, d)
        yield* settle([{ index: d.index, outcome }])
        next++
        continue
      }
      const alone = Effect.gen(function* () {
        const outcome = d._tag === "Undecodable" ? d.outcome : yield* handleAlone(batch, d)
        yield* settleAlone(db, batch, settle, { index: d.index, outcome })
        next++
      })
      if (next < aloneUntil) {
        yield* alone
        continue
      }
      const run = decoded.slice(next, next + EVENTS_PER_TRANSACTION)
      const exit = yield* Effect.exit(round(run))
      if (exit._tag === "Failure") {
        if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
        // A COMMIT refused for what a handler wrote (integrity, serialization) names no event: each event of the
        // round goes alone, which finds the one at fault (the round is not tried again once per event before it).
        if (handlerFault(exit.cause) !== undefined) {
          aloneUntil = next + run.length
          yield* alone
          continue
        }
        outages++
        yield* Effect.logWarning("inbox transaction failed, retrying", exit.cause, { retry: outages })
        yield* Effect.sleep(waitOf(batch.retry, outages))
        continue
      }
      outages = 0
      const { settled, failed } = exit.value
      if (settled.length > 0) yield* settle(settled)
      next += settled.length
      if (failed !== undefined) {
        const outcome = yield* handleAlone(batch, failed.decoded, failed.fault)
        yield* settleAlone(db, batch, settle, { index: failed.decoded.index, outcome })
        next++
      }
    }
  }).pipe(Effect.annotateLogs({ consumer: batch.consumer, topic: batch.topic }))

// A message handled alone: its `settleWithin` in a transaction of its own (a database away fails the batch, which
// the bus retries from its position: the inbox turns away what was done), then the rest of its settling.
const settleAlone = <R, ES, RS>(
  db: Db["Service"],
  batch: Batch<R, ES, RS>,
  settle: (settled: ReadonlyArray<Settled>) => Effect.Effect<void, ES, RS>,
  settled: Settled,
) =>
  Effect.andThen(
    batch.settleWithin === undefined ? Effect.void : db.transaction(batch.settleWithin([settled])),
    settle([settled]),
  )

/** A subscription's full retry policy: the bus default overridden by the subscription's own settings. */
export const retryPolicy = (busDefault: Partial<RetryPolicy> | undefined, own: Partial<RetryPolicy> | undefined) => ({
  ...defaultRetry,
  ...busDefault,
  ...own,
})

/**
 * One subscription (and consumer group `<group>:<topic>`) per topic, for a consumer of many producers (audit,
 * analytics), opened one after another and closed all at once when the caller's scope closes: closed one after
 * another, each Kafka consumer's stop (its fetch in flight, leaving its group) added up with every producer the
 * registry gained, towards a container's shutdown budget.
 */
export const subscribeEach = <R>(options: {
  readonly topics: ReadonlyArray<string>
  readonly group: string
  readonly handler: (event: CloudEvent.CloudEvent) => Effect.Effect<void, unknown, R>
}): Effect.Effect<void, EventBusError, EventBus | Scope.Scope | R> =>
  Effect.gen(function* () {
    const bus = yield* EventBus
    const scope = yield* Scope.fork(yield* Effect.scope, "parallel")
    yield* Effect.forEach(
      options.topics,
      (topic) =>
        bus
          .subscribe({ topic, types: "*", group: `${options.group}:${topic}`, handler: options.handler })
          .pipe(Scope.provide(scope)),
      { discard: true },
    )
  })
