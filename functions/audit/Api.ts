import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { exists } from "../../shared/DateTime.ts"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import { ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { AuditRecord } from "./AuditRecord.ts"
import { manifest } from "./module.ts"

const RFC3339 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/u

/** A point in time in a query: an RFC 3339 date-time with offset, or a date (UTC midnight), years 1 to 9999. */
export const Instant = Schema.String.check(
  // The shape, as the document states it; the filter below also refuses dates that do not exist (2025-02-30).
  Schema.isPattern(RFC3339, { message: "must be an RFC 3339 date-time (2025-01-31T12:00:00Z) or date" }),
  Schema.makeFilter(
    (s: string) => {
      if (!RFC3339.test(s)) return true
      return exists(s) && new Date(Date.parse(s)).getUTCFullYear() >= 1
    },
    { message: "must be a date that exists, from year 1" },
  ),
)

/** An action (event type) filter: `service.entity.action`. */
export const Action = Schema.String.check(
  Schema.isMaxCodePoints(200, { message: "must be at most 200 characters" }),
  Schema.isPattern(/^[a-z0-9]+(\.[a-z0-9_-]+)+$/u, { message: "must look like service.entity.action" }),
)

/** The answer of `GET /api/v1/audit/verify`. */
export const Verification = Schema.Union([
  Schema.Struct({
    ok: Schema.Literal(true),
    /** Records in the chain up to `head`, all of which check (this call's and earlier verifications'). */
    checked: Schema.Int,
    head: Schema.NullOr(Schema.String),
    /** Records whose hash and link this call recomputed: those after the last verified checkpoint, or all with `full`. */
    rechecked: Schema.Int,
  }),
  Schema.Struct({ ok: Schema.Literal(false), brokenAt: Schema.String }),
])

/** The audit log's public contract (through the gateway, which enforces `audit.event.read` / `.verify`). */
export class AuditEventsApi extends HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/audit/events", {
      query: {
        ...pageQuery,
        actorId: Schema.optional(Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" }))),
        action: Schema.optional(Action),
        targetId: Schema.optional(
          Schema.String.check(
            Schema.isMinCodePoints(1, { message: "must not be empty" }),
            Schema.isMaxCodePoints(200, { message: "must be at most 200 characters" }),
          ),
        ),
        /** Records that occurred at or after this time. */
        from: Schema.optional(Instant),
        /** Records that occurred before this time. */
        to: Schema.optional(Instant),
      },
      success: Page(AuditRecord),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("audit.event.read"))
      .annotate(OpenApi.Summary, "List audit records, newest first, with filters"),
    HttpApiEndpoint.get("verify", "/api/v1/audit/verify", {
      query: {
        /** `true`: recompute the whole chain from its first record instead of from the last verified checkpoint. */
        full: Schema.optional(Schema.Literals(["true", "false"])),
      },
      success: Verification,
      error: [ServiceUnavailable],
    })
      .pipe(Route.requires("audit.event.verify", { timeoutMs: 60_000 }))
      .annotate(
        OpenApi.Summary,
        "Verify the audit log's hash chain from the last verified checkpoint (`full=true`: from its first record)",
      ),
  )
  .annotate(OpenApi.Description, "The append-only, hash-chained audit log: query and verify") {}

/** Audit's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class AuditApi extends Contract.make(HttpApi.make("audit").add(AuditEventsApi), manifest) {}
