import { randomUUID } from "node:crypto"
import { Schema } from "effect"

/** A CloudEvents 1.0 JSON envelope as it travels on the bus. */
export const CloudEvent = Schema.Struct({
  specversion: Schema.Literal("1.0"),
  id: Schema.String.check(Schema.isMinLength(1)),
  source: Schema.String.check(Schema.isMinLength(1)),
  type: Schema.String.check(Schema.isMinLength(1)),
  time: Schema.String,
  subject: Schema.optional(Schema.String),
  datacontenttype: Schema.optional(Schema.String),
  traceparent: Schema.optional(Schema.String),
  data: Schema.Unknown,
})
export type CloudEvent = typeof CloudEvent.Type

/** Builds an envelope with a fresh id and the current time. */
export const make = (input: {
  readonly source: string
  readonly type: string
  readonly subject?: string
  readonly data: unknown
  readonly traceparent?: string
}): CloudEvent => ({
  specversion: "1.0",
  id: randomUUID(),
  source: input.source,
  type: input.type,
  time: new Date().toISOString(),
  ...(input.subject !== undefined ? { subject: input.subject } : {}),
  datacontenttype: "application/json",
  ...(input.traceparent !== undefined ? { traceparent: input.traceparent } : {}),
  data: input.data,
})

/** The topic a service publishes on: one per producing service. */
export const topicOf = (service: string) => `${service}.events`

/** The dead-letter topic of a topic. */
export const dlqOf = (topic: string) => `${topic}.dlq`

/** Decodes untrusted bytes into an envelope. */
export const decode = Schema.decodeUnknownEffect(Schema.fromJsonString(CloudEvent))
