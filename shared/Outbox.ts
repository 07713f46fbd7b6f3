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
        const publish = Effect.fn("Outbox.publish")(function* (event: NewEvent) {
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
          yield* db.query(`INSERT INTO ${db.schema}.outbox (id, topic, key, event) VALUES ($1, $2, $3, $4)`, [
            envelope.id,
            topic,
            event.subject,
            json,
          ])
          return envelope
        })
        return Outbox.of({ publish })
      }),
    )
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
