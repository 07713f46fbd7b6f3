import { randomUUID } from "node:crypto"
import { Effect, Schema } from "effect"
import { AuditServiceService, type AuditRecord as ProtoRecord } from "../../proto/gen/audit/v1/audit.ts"
import * as GrpcServer from "../../shared/GrpcServer.ts"
import * as Problem from "../../shared/Problem.ts"
import { decode, ValidationFailed } from "../../shared/Problem.ts"
import { auditFields } from "../../shared/RequestContext.ts"
import { Action, Instant } from "./Api.ts"
import { AuditLog } from "./AuditLog.ts"
import { type AuditRecord, asStoredJson, Outcome } from "./AuditRecord.ts"

// Proto ↔ domain mapping happens here, at the edge, and nowhere else. Proto3 strings are "" when unset.
const toProto = (record: AuditRecord): ProtoRecord => ({
  id: record.id,
  occurredAt: record.occurredAt,
  actorId: record.actorId ?? "",
  action: record.action,
  targetType: record.targetType ?? "",
  targetId: record.targetId ?? "",
  outcome: record.outcome,
  requestId: record.requestId ?? "",
  ip: record.ip ?? "",
  metadataJson: JSON.stringify(record.metadata),
  hash: record.hash,
  prevHash: record.prevHash,
})

const Text = (max: number) =>
  Schema.String.check(Schema.isMaxLength(max, { message: `must be at most ${max} characters` }))

const RecordRequest = Schema.Struct({
  id: Schema.Union([Schema.Literal(""), Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" }))]),
  occurredAt: Schema.Union([Schema.Literal(""), Instant]),
  actorId: Text(200),
  action: Action,
  targetType: Text(100),
  targetId: Text(200),
  outcome: Schema.Union([Schema.Literal(""), Outcome]),
  requestId: Text(200),
  ip: Text(100),
  metadataJson: Text(64 * 1024),
})

const invalid = (path: string, message: string) =>
  new ValidationFailed({ detail: "The request does not match the API contract", errors: [{ path, message }] })

// Metadata travels as JSON text; it must be an object and storable as jsonb (no NUL characters).
const parseMetadata = (json: string) =>
  Effect.gen(function* () {
    if (json === "") return {}
    const value = yield* Effect.try({
      try: () => JSON.parse(json) as unknown,
      catch: () => invalid("metadataJson", "must be JSON"),
    })
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return yield* invalid("metadataJson", "must be a JSON object")
    }
    if (json.includes("\\u0000")) return yield* invalid("metadataJson", "must not contain NUL characters")
    return asStoredJson(value as Record<string, unknown>)
  })

const orNull = (value: string) => (value === "" ? null : value)

/** Audit's gRPC service (audit.v1.AuditService): direct writes into the audit log. */
export const AuditGrpc = GrpcServer.service(AuditServiceService, {
  record: (request) =>
    Effect.gen(function* () {
      const input = yield* decode(RecordRequest)(request)
      const metadata = yield* parseMetadata(input.metadataJson)
      // Unset who/where/which-request fall back to the call's metadata (x-actor, x-client-ip, x-request-id).
      const context = yield* auditFields
      const log = yield* AuditLog
      const record = yield* log
        .record({
          id: input.id === "" ? randomUUID() : input.id,
          occurredAt: input.occurredAt === "" ? new Date().toISOString() : new Date(input.occurredAt).toISOString(),
          actorId: orNull(input.actorId) ?? context.actor,
          action: input.action,
          targetType: orNull(input.targetType),
          targetId: orNull(input.targetId),
          outcome: input.outcome === "" ? "success" : input.outcome,
          requestId: orNull(input.requestId) ?? context.requestId,
          ip: orNull(input.ip) ?? context.ip,
          metadata,
        })
        .pipe(
          Effect.catchTag(
            "DbError",
            Problem.unavailable("recording failed", "the audit log is unavailable, retry later"),
          ),
        )
      return { record: toProto(record) }
    }),
})

/** Everything audit serves over gRPC (loaded by main.ts once HTTP listens). */
export const services = [AuditGrpc]
