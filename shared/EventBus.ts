import { Cause, Context, type Duration, Effect, Metric, Option, Predicate, Schedule, Schema, type Scope } from "effect"
import { Headers, HttpTraceContext } from "effect/http"
import * as Backoff from "./Backoff.ts"
import * as CloudEvent from "./CloudEvent.ts"
import { assertIdentifier, Db, type DbError } from "./Db.ts"

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
   * starts with the events published within `since` before it (Kafka: the topic's retained events).
   */
  readonly broadcast?: { readonly since: Duration.Input }
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

/** One message as a bus implementation hands it to `consume`. */
export interface Delivery<R> {
  readonly consumer: string
  readonly topic: string
  /** JSON text (Kafka) or an already parsed value (a jsonb outbox row). */
  readonly payload: unknown
  /** Trace context from the transport, used when the envelope carries none. */
  readonly traceparent?: string | undefined
  readonly handler: (event: CloudEvent.CloudEvent) => Effect.Effect<void, unknown, R>
  readonly retry: RetryPolicy
  readonly system: "kafka" | "postgresql"
  /** False for a broadcast subscription: the handler runs without the inbox and its transaction. Default true. */
  readonly inbox?: boolean
  /** Extra span attributes (partition, offset, seq). */
  readonly attributes?: Record<string, unknown>
}

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

// A COMMIT refused because of what the handler wrote: integrity (23) or serialization/deadlock (40).
const isDataError = (error: unknown): boolean => {
  const code = dbCodeOf(error)
  return code !== undefined && /^(23|40)/.test(code)
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

/**
 * Consumes one message with the semantics every bus shares: decode (undecodable → dead letter at once), then per
 * attempt one `Db.transaction` that inserts `(consumer, event id)` into the inbox and runs the handler only when the
 * row is new, so a failure rolls the inbox row back. Handler failures are retried with backoff up to
 * `retry.maxAttempts`; failures of the bookkeeping itself (database down) are retried until they pass.
 */
export const consume = <R>(delivery: Delivery<R>): Effect.Effect<Outcome, never, Db | R> => {
  const parsed = parse(delivery.payload)
  const parent = parentOf(("value" in parsed ? traceparentOf(parsed.value) : undefined) ?? delivery.traceparent)
  return Effect.gen(function* () {
    const db = yield* Db
    const inbox = `${assertIdentifier(db.schema)}.inbox`
    const decoded = yield* Effect.result(
      "value" in parsed
        ? Effect.mapError(decodeEnvelope(parsed.value), (error) => error.message)
        : Effect.fail(parsed.error),
    )
    if (decoded._tag === "Failure") {
      const outcome: Outcome = { _tag: "Undecodable", error: `not a CloudEvent: ${decoded.failure}` }
      yield* Effect.logWarning("undecodable event, dead-lettering", { error: outcome.error })
      return outcome
    }
    const event = decoded.success
    yield* Effect.annotateCurrentSpan({ "messaging.message.id": event.id, "cloudevents.event_type": event.type })

    // The handler is called again on every attempt.
    const run = Effect.suspend(() => delivery.handler(event)).pipe(
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.fail(new HandlerFailed({ cause })),
      ),
    )
    const attempt =
      delivery.inbox === false
        ? Effect.as(run, true)
        : db.transaction(
            Effect.gen(function* () {
              const inserted = yield* db.query(
                `INSERT INTO ${inbox} (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1`,
                [delivery.consumer, event.id],
              )
              if (inserted.length === 0) return false
              yield* run
              return true
            }),
          )

    // The database being away is retried until it answers, with one backoff for the whole delivery: a handler fault
    // in between does not start it again from `baseDelay` (the schedule's step is made once and shared by every retry).
    const unavailableBackoff = yield* Schedule.toStep(
      backoff(delivery.retry).pipe(
        Schedule.setInputType<Cause.Cause<unknown>>(),
        Schedule.tap(({ input, attempt }) =>
          Effect.logWarning("inbox transaction failed, retrying", input, { retry: attempt }),
        ),
      ),
    )
    // One attempt, through outages; a handler fault comes out as a value, for the retry below to count.
    const attemptThroughOutages = attempt.pipe(
      Effect.map((inserted) => ({ inserted, fault: undefined })),
      Effect.catchCause((cause) => {
        const fault = handlerFault(cause)
        return fault === undefined ? Effect.failCause(cause) : Effect.succeed({ inserted: false, fault })
      }),
      Backoff.retryForever(Schedule.fromStep(Effect.succeed(unavailableBackoff))),
    )

    // Handler faults are retried with backoff until `maxAttempts` attempts have failed, then dead-lettered.
    return yield* Effect.gen(function* () {
      // The retry's count of the handler faults so far (0 on the first attempt).
      const attempts = (yield* Schedule.CurrentMetadata).attempt + 1
      const { inserted, fault } = yield* attemptThroughOutages
      if (fault !== undefined)
        return yield* Effect.fail<HandlerFault>({ attempts, cause: fault, error: describeCause(fault) })
      const outcome: Outcome = inserted ? { _tag: "Handled", attempts } : { _tag: "Duplicate" }
      return outcome
    }).pipe(
      Effect.retry(
        backoff(delivery.retry).pipe(
          Schedule.upTo({ times: delivery.retry.maxAttempts - 1 }),
          Schedule.setInputType<HandlerFault>(),
          Schedule.tap(({ input }) =>
            Effect.logWarning("handler failed, retrying", { attempt: input.attempts, error: input.error }),
          ),
        ),
      ),
      Effect.catch((fault) =>
        Effect.logError("handler failed, dead-lettering", fault.cause, { attempts: fault.attempts }).pipe(
          Effect.as<Outcome>({ _tag: "Failed", attempts: fault.attempts, error: fault.error }),
        ),
      ),
    )
  }).pipe(
    Effect.tap((outcome) => Metric.update(Metric.withAttributes(consumed, { outcome: outcome._tag }), 1)),
    Effect.tap((outcome) => Effect.annotateCurrentSpan("eventbus.outcome", outcome._tag)),
    Effect.annotateLogs({ consumer: delivery.consumer, topic: delivery.topic }),
    Effect.withSpan("EventBus.consume", {
      kind: "consumer",
      // Without a propagated context the message starts its own trace, not a child of the long-lived subscription.
      ...(parent !== undefined ? { parent } : { root: true }),
      attributes: {
        "messaging.system": delivery.system,
        "messaging.operation.type": "process",
        "messaging.destination.name": delivery.topic,
        "messaging.consumer.group.name": delivery.consumer,
        ...delivery.attributes,
      },
    }),
  )
}

/** A subscription's full retry policy: the bus default overridden by the subscription's own settings. */
export const retryPolicy = (busDefault: Partial<RetryPolicy> | undefined, own: Partial<RetryPolicy> | undefined) => ({
  ...defaultRetry,
  ...busDefault,
  ...own,
})
