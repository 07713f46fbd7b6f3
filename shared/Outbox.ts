import { Context, Effect, Layer } from "effect"
import { HttpTraceContext } from "effect/http"
import * as CloudEvent from "./CloudEvent.ts"
import { Db, type DbError } from "./Db.ts"
import type { ModuleManifest } from "./Module.ts"
import { auditFields } from "./RequestContext.ts"

/** Kernel tables for the outbox and the consumers' inbox (see KernelMigrations.ts). */
export { outboxMigrations as migrations } from "./KernelMigrations.ts"

/** Largest serialized event the outbox accepts: events carry ids and facts, not documents. */
export const MAX_EVENT_BYTES = 256 * 1024

/**
 * What a service hands to the outbox: the event type, the aggregate it concerns, and the data. An object `data` gets
 * the audit fields `actor`, `target` (default: the subject), `ip` and `requestId` of the work in progress added, unless
 * it sets them itself.
 */
export interface NewEvent {
  readonly type: string
  /** Aggregate id: the Kafka key, so one aggregate's events stay in order. */
  readonly subject: string
  readonly data: unknown
}

/** The transactional outbox: events are rows written in the same transaction as the change they describe. */
export class Outbox extends Context.Service<
  Outbox,
  {
    /** Appends an event; call it inside `Db.transaction` together with the change. */
    publish(event: NewEvent): Effect.Effect<CloudEvent.CloudEvent, DbError>
  }
>()("shared/Outbox") {
  /**
   * The outbox of a function publishing on `<name>.events`. Given its manifest, it publishes only the event types the
   * manifest declares (`events.publishes`): another type is a bug, refused as a defect, so consumers and the registry
   * can trust the declaration. A bare name (tests of the kernel) publishes any type.
   */
  static readonly layer = (of: string | Pick<ModuleManifest, "name" | "events">) =>
    Layer.effect(
      Outbox,
      Effect.gen(function* () {
        const db = yield* Db
        const service = typeof of === "string" ? of : of.name
        const declared = typeof of === "string" ? undefined : new Set(of.events.publishes)
        const topic = CloudEvent.topicOf(service)
        const channel = channelOf(db.schema)
        // Its span without a stack trace: made for every event, and its name says where it comes from.
        const publish = Effect.fnUntraced(
          function* (event: NewEvent) {
            if (declared !== undefined && !declared.has(event.type)) {
              return yield* Effect.die(
                new Error(`event ${event.type} is not declared in ${service}'s manifest (events.publishes)`),
              )
            }
            const span = yield* Effect.option(Effect.currentSpan)
            const traceparent = span._tag === "Some" ? HttpTraceContext.toHeaders(span.value).traceparent : undefined
            const data = isRecord(event.data)
              ? { ...(yield* auditFields), target: event.subject, ...event.data }
              : event.data
            const envelope = CloudEvent.make({
              source: service,
              ...event,
              data,
              ...(traceparent ? { traceparent } : {}),
            })
            const json = JSON.stringify(envelope)
            // Kafka refuses messages over its limit (1 MiB by default) for good; such a row would stall the relay.
            if (Buffer.byteLength(json) > MAX_EVENT_BYTES) {
              return yield* Effect.die(
                new Error(
                  `event ${event.type} is ${Buffer.byteLength(json)} bytes; events are limited to ${MAX_EVENT_BYTES}`,
                ),
              )
            }
            // With a notification to the outbox's channel, in the same statement (no extra round trip): delivered at
            // COMMIT, it wakes an idle relay at once instead of at its next poll (never at a rollback). Only a hint.
            yield* db.query(
              `WITH added AS (INSERT INTO ${db.schema}.outbox (id, topic, key, event) VALUES ($1, $2, $3, $4))
             SELECT pg_notify($5, '')`,
              [envelope.id, topic, event.subject, json, channel],
            )
            return envelope
          },
          Effect.withSpan("Outbox.publish", undefined, { captureStackTrace: false }),
        )
        return Outbox.of({ publish })
      }),
    )
}

/**
 * The Postgres notification channel on which a schema's outbox announces new rows (`pg_notify` at each publish,
 * delivered at COMMIT): listeners (the relay) wake on it rather than waiting out their poll. A channel name is at most
 * 63 bytes; a longer one is cut there (two schemas sharing a channel only wake each other's relay for nothing).
 */
export const channelOf = (schema: string): string => `outbox_${schema}`.slice(0, 63)

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
