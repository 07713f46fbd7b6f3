import { Schema, SchemaTransformation } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { DateTime } from "../../shared/DateTime.ts"
import { Limit } from "../../shared/Pagination.ts"
import { ServiceUnavailable, Unauthorized, ValidationFailed } from "../../shared/Problem.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"

/** The most events one ingestion takes. */
export const MAX_EVENTS = 100
/** The largest ingestion body (bytes): at the gateway and in the function. */
export const MAX_BODY_BYTES = 256 * 1024
/** The most properties of one event. */
export const MAX_PROPERTIES = 30
/** The longest string property value (characters). */
export const MAX_STRING = 512
/** Ingestions per minute from one address (at the gateway; `GATEWAY_ROUTES` may change it). */
export const INGEST_PER_MINUTE = 600

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

// The platform's own event types (`identity.user.created`, ...) are counted from the bus only: a client may not send
// an event under a producing function's prefix, or anyone could add signups.
const reserved = manifests.map((m) => `${m.name}.`)

/** An event name: 1–100 characters, letters, digits and `_ . : / -`, not under a platform function's prefix. */
export const EventName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$/, {
    message: "must be 1-100 letters, digits or _ . : / - starting with a letter or digit",
  }),
  Schema.makeFilter((name: string) =>
    reserved.some((prefix) => name.startsWith(prefix))
      ? `${name.split(".")[0]}.* names are the platform's events`
      : true,
  ),
)

/** A property name: 1–64 characters, letters, digits and `_ . : $ -`. */
export const PropertyName = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_$][A-Za-z0-9_.:$-]{0,63}$/, {
    message: "must be 1-64 letters, digits or _ . : $ -",
  }),
)

/** A property's value: a scalar (a string of at most 512 characters, a number, a boolean, null). */
export const PropertyValue = Schema.Union([
  Schema.String.check(Schema.isMaxLength(MAX_STRING, { message: `must be at most ${MAX_STRING} characters` })),
  Schema.Finite,
  Schema.Boolean,
  Schema.Null,
])

/** One event as a client sends it. */
export const NewEvent = Schema.Struct({
  /** Client-made UUID: the same id again is counted once (`duplicates`). */
  id: Schema.String.check(Schema.isPattern(UUID, { message: "must be a UUID" })),
  name: EventName,
  /** When it happened (default: when received); within the raw retention window and at most 5 minutes ahead. */
  occurredAt: Schema.optional(DateTime),
  /** The client's id of an anonymous visitor (counted as a unique user when no one is signed in). */
  anonymousId: Schema.optional(
    Schema.String.check(
      Schema.isPattern(/^[\x21-\x7e]{1,200}$/, { message: "must be 1-200 printable ASCII characters" }),
    ),
  ),
  properties: Schema.optional(
    Schema.Record(PropertyName, PropertyValue).check(
      Schema.isMaxProperties(MAX_PROPERTIES, { message: `must have at most ${MAX_PROPERTIES} properties` }),
    ),
  ),
})
export type NewEvent = typeof NewEvent.Type

/** A batch of events, validated whole: one bad event is a 400 naming it, and nothing is written. */
export const Batch = Schema.Struct({
  events: Schema.Array(NewEvent).check(
    Schema.isMinLength(1, { message: "must have at least 1 event" }),
    Schema.isMaxLength(MAX_EVENTS, { message: `must have at most ${MAX_EVENTS} events` }),
  ),
})

/** Ingestion: events from clients, anyone's (a bearer token, when sent, makes its user the events' user). */
export class IngestApi extends HttpApiGroup.make("ingest")
  .add(
    HttpApiEndpoint.post("events", "/api/v1/analytics/events", {
      payload: Batch,
      success: Schema.Struct({ accepted: Schema.Int, duplicates: Schema.Int }).pipe(HttpApiSchema.status(202)),
      error: [Unauthorized, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open({ ipPerMinute: INGEST_PER_MINUTE, maxBodyBytes: MAX_BODY_BYTES }))
      .annotate(
        OpenApi.Summary,
        `Record up to ${MAX_EVENTS} events (≤ 256 KiB); an id seen before is a duplicate; a bearer token sets userId`,
      ),
  )
  .annotate(OpenApi.Description, "Event ingestion") {}

/** An event name in a report's query (platform types included). */
const QueryEvent = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$/, { message: "must be an event name" }),
)

const range = { from: DateTime, to: DateTime }

/** The longest funnel window: 90 days. */
export const MAX_WINDOW_SECONDS = 90 * 86_400

/** A funnel's window: whole seconds from 1 to 90 days, written plainly. */
const WindowSeconds = Schema.String.check(
  Schema.isPattern(/^[1-9][0-9]{0,6}$/u, {
    message: `must be a whole number of seconds from 1 to ${MAX_WINDOW_SECONDS}`,
  }),
  Schema.makeFilter((s: string) => Number(s) <= MAX_WINDOW_SECONDS, {
    message: `must be a whole number of seconds from 1 to ${MAX_WINDOW_SECONDS}`,
  }),
).pipe(Schema.decodeTo(Schema.Int, SchemaTransformation.numberFromString))

/** A time series point: the bucket's start, its events and its unique users. */
export const Point = Schema.Struct({ t: Schema.String, count: Schema.Int, uniques: Schema.Int })

/** Reports over the rollups (and the raw events not yet rolled up), for analytics.report.read. */
export class ReportsApi extends HttpApiGroup.make("reports")
  .add(
    HttpApiEndpoint.get("timeseries", "/api/v1/analytics/timeseries", {
      query: {
        event: QueryEvent,
        ...range,
        interval: Schema.Literals(["minute", "hour", "day"]),
        property: Schema.optional(PropertyName),
        value: Schema.optional(Schema.String.check(Schema.isMaxLength(MAX_STRING))),
      },
      success: Schema.Struct({ interval: Schema.String, points: Schema.Array(Point) }),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("analytics.report.read"))
      .annotate(OpenApi.Summary, "Events and unique users per minute, hour or day (optionally where property = value)"),
    HttpApiEndpoint.get("top", "/api/v1/analytics/top", {
      query: {
        event: QueryEvent,
        property: PropertyName,
        ...range,
        limit: Schema.optional(Limit),
      },
      success: Schema.Struct({ items: Schema.Array(Schema.Struct({ value: Schema.String, count: Schema.Int })) }),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("analytics.report.read"))
      .annotate(OpenApi.Summary, "The most frequent values of an event's property"),
    HttpApiEndpoint.get("funnel", "/api/v1/analytics/funnel", {
      query: {
        steps: Schema.String,
        ...range,
        windowSeconds: WindowSeconds,
      },
      success: Schema.Struct({ steps: Schema.Array(Schema.Struct({ event: Schema.String, users: Schema.Int })) }),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("analytics.report.read"))
      .annotate(OpenApi.Summary, "Users who did the steps in order, each within windowSeconds of their first step"),
    HttpApiEndpoint.get("overview", "/api/v1/analytics/overview", {
      query: range,
      success: Schema.Struct({
        signups: Schema.Int,
        activeUsers: Schema.Struct({ day: Schema.Int, week: Schema.Int, month: Schema.Int }),
        logins: Schema.Int,
        posts: Schema.Int,
        subscriptions: Schema.Struct({ active: Schema.Int }),
        mrr: Schema.Struct({ amount: Schema.Int, currency: Schema.NullOr(Schema.String) }),
      }),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("analytics.report.read"))
      .annotate(OpenApi.Summary, "Signups, active users, logins, posts, active subscriptions and MRR"),
  )
  .annotate(OpenApi.Description, "Reports: time series, top values, funnels, overview") {}

/** Analytics' HTTP contract. */
export class AnalyticsApi extends Contract.make(HttpApi.make("analytics").add(IngestApi).add(ReportsApi), manifest) {}
