import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import * as Problem from "../../shared/Problem.ts"
import { rateLimitHeaders } from "./ProxyHeaders.ts"
import type { BodyTooLarge, UpstreamTimeout, UpstreamUnavailable } from "./Upstreams.ts"

export const tooMany = (limit: number, retryAfter: number) =>
  HttpServerResponse.setHeaders(Problem.response(429, "too many requests, slow down", { retryAfter, limit }), {
    "retry-after": String(retryAfter),
    ...rateLimitHeaders({ limit, remaining: 0, resetSeconds: retryAfter }),
  })

export const unavailable = (detail: string, retryAfter: number) =>
  HttpServerResponse.setHeader(Problem.response(503, detail, { retryAfter }), "retry-after", String(retryAfter))

export const isProblem = (contentType: string | Array<string> | undefined) =>
  typeof contentType === "string" && contentType.startsWith("application/problem+json")

/** The problem for a request the upstream could not take: too large, too slow, or unavailable (logged). */
export const forwardFailure = (error: BodyTooLarge | UpstreamTimeout | UpstreamUnavailable) =>
  Effect.gen(function* () {
    switch (error._tag) {
      case "BodyTooLarge":
        return Problem.response(413, `request body is larger than ${error.limit} bytes`)
      case "UpstreamTimeout":
        return Problem.response(504, `the ${error.upstream} service did not answer in time`)
      case "UpstreamUnavailable":
        // An open circuit is logged at debug: under load that is one line per refused request.
        yield* (error.reason === "circuit open" ? Effect.logDebug : Effect.logWarning)("upstream unavailable", {
          upstream: error.upstream,
          reason: error.reason,
        })
        return unavailable(`the ${error.upstream} service is unavailable, retry later`, error.retryAfter)
    }
  })
