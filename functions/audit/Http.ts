import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { validationProblems } from "../../shared/Server.ts"
import { AuditApi } from "./Api.ts"
import { AuditLog } from "./AuditLog.ts"

// Query times are normalised to UTC ISO before they reach SQL.
const iso = (value: string | undefined) => (value === undefined ? undefined : new Date(value).toISOString())

/** Handlers of the audit group: the filtered log and the chain verification. */
export const AuditHttp = HttpApiBuilder.group(
  AuditApi,
  "audit",
  Effect.fn(function* (handlers) {
    const log = yield* AuditLog
    return handlers
      .handle("list", ({ query }) => log.list({ ...query, from: iso(query.from), to: iso(query.to) }))
      .handle("verify", ({ query }) => log.verify({ full: query.full === "true" }))
  }),
)

/** Audit's HTTP routes, ready to serve; needs `AuditLog`. */
export const HttpLive = HttpApiBuilder.layer(AuditApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide(AuditHttp),
  Layer.provide(validationProblems),
)
