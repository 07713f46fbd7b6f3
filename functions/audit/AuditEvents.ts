import { Effect, Layer } from "effect"
import { subscribeEach } from "../../shared/EventBus.ts"
import { AuditLog } from "./AuditLog.ts"

/** What the consumer reads: the topics, and the prefix of its consumer groups (one group per topic). */
export interface AuditEventsOptions {
  readonly topics: ReadonlyArray<string>
  /** Consumer group (and inbox name) prefix; the group of a topic is `<prefix>:<topic>`. */
  readonly group: string
}

/**
 * Records every event of the given topics in the audit log, one subscription (and consumer group) per topic, each
 * event once: the bus's inbox skips a redelivered event id, and the log itself keeps the first record of an id.
 */
export const layer = (options: AuditEventsOptions) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const log = yield* AuditLog
      yield* subscribeEach({ ...options, handler: (event) => Effect.asVoid(log.recordEvent(event)) })
    }),
  )
