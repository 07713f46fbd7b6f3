import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { optionalCaller, Verifier } from "../../shared/access/Authentication.ts"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { validationProblems } from "../../shared/Server.ts"
import { AnalyticsApi } from "./Api.ts"
import { Events } from "./Events.ts"
import { Reports } from "./Reports.ts"

/** Handlers of the ingestion. */
export const IngestHttp = HttpApiBuilder.group(
  AnalyticsApi,
  "ingest",
  Effect.fn(function* (handlers) {
    const events = yield* Events
    const verifier = yield* Verifier
    return handlers.handle("events", ({ payload, request }) =>
      Effect.gen(function* () {
        const caller = yield* optionalCaller(verifier, request.headers.authorization)
        if (caller.refused !== undefined) return caller.refused
        return yield* events.record(payload.events, caller.userId)
      }),
    )
  }),
)

/** Handlers of the reports (analytics.report.read, enforced by the route's declaration). */
export const ReportsHttp = HttpApiBuilder.group(
  AnalyticsApi,
  "reports",
  Effect.fn(function* (handlers) {
    const reports = yield* Reports
    return handlers
      .handle("timeseries", ({ query }) => reports.timeseries(query))
      .handle("top", ({ query }) => reports.top({ ...query, limit: query.limit ?? 10 }))
      .handle("funnel", ({ query }) => reports.funnel(query))
      .handle("overview", ({ query }) => reports.overview(query))
  }),
)

/** Analytics' HTTP routes, ready to serve; needs `Events`, `Reports` and `Verifier`. */
export const HttpLive = HttpApiBuilder.layer(AnalyticsApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([IngestHttp, ReportsHttp]),
  Layer.provide(validationProblems),
)
