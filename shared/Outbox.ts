import { Context, Effect, Layer } from "effect"
import { HttpTraceContext } from "effect/http"
import * as CloudEvent from "./CloudEvent.ts"
import { Db, type DbError } from "./Db.ts"
import type { Migration } from "./Migrator.ts"

/** Kernel tables every function that publishes or consumes events gets in its own schema. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0000_kernel_outbox",
    sql: `
      CREATE TABLE outbox (
        seq          bigserial PRIMARY KEY,
        id           uuid NOT NULL UNIQUE,
        topic        text NOT NULL,
        key          text,
        event        jsonb NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
      );
      CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
      CREATE TABLE inbox (
        consumer     text NOT NULL,
        event_id     text NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
      );`,
  },
]

/** What a service hands to the outbox: the event type, the aggregate it concerns, and the data. */
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
  /** The outbox of a service publishing on `<service>.events`. */
  static readonly layer = (service: string) =>
    Layer.effect(
      Outbox,
      Effect.gen(function* () {
        const db = yield* Db
        const topic = CloudEvent.topicOf(service)
        const publish = Effect.fn("Outbox.publish")(function* (event: NewEvent) {
          const span = yield* Effect.option(Effect.currentSpan)
          const traceparent = span._tag === "Some" ? HttpTraceContext.toHeaders(span.value).traceparent : undefined
          const envelope = CloudEvent.make({ source: service, ...event, ...(traceparent ? { traceparent } : {}) })
          yield* db.query(`INSERT INTO ${db.schema}.outbox (id, topic, key, event) VALUES ($1, $2, $3, $4)`, [
            envelope.id,
            topic,
            event.subject,
            JSON.stringify(envelope),
          ])
          return envelope
        })
        return Outbox.of({ publish })
      }),
    )
}
