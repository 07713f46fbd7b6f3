import { type Cause, Effect } from "effect"
import { HttpServerError, HttpServerResponse } from "effect/http"
import * as Problem from "./Problem.ts"

const isResponse = HttpServerResponse.isHttpServerResponse

const isProblem = (response: HttpServerResponse.HttpServerResponse) =>
  (response.headers["content-type"] ?? "").startsWith("application/problem+json")

// True when reading the body hit MaxBodySize (a chunked body has no Content-Length to check up front).
const exceededBodyLimit = (cause: Cause.Cause<unknown>): boolean => {
  const seen = new Set<unknown>()
  const visit = (value: unknown): boolean => {
    if (value === null || typeof value !== "object" || seen.has(value)) return false
    seen.add(value)
    const v = value as { _tag?: unknown; cause?: unknown; reason?: unknown; error?: unknown; defect?: unknown }
    return v._tag === "MaxBytesError" || [v.cause, v.reason, v.error, v.defect].some(visit)
  }
  return cause.reasons.some(visit)
}

/**
 * Whether the answer to a failure is a defect for the error bus: a 5xx, but not a deliberate one (503 for an outage or
 * a shutdown, 504 for a timeout, a response a handler chose to die with). A 4xx is the caller's, never reported.
 */
export const isUnexpected = (cause: Cause.Cause<unknown>, status: number): boolean =>
  status >= 500 &&
  status !== 503 &&
  status !== 504 &&
  !cause.reasons.every((r) => r._tag === "Die" && isResponse(r.defect))

// Turns a failure or defect that escaped the handlers into a response; defects are logged, never shown.
export const causeToResponse = (cause: Cause.Cause<unknown>) =>
  Effect.gen(function* () {
    if (exceededBodyLimit(cause)) return Problem.response(413, "request body is too large")
    const [response] = yield* HttpServerError.causeResponse(cause)
    if (response.status >= 500) yield* Effect.logError("unhandled failure", cause)
    return response
  })

// Every error response leaves as problem+json with a stable code, whatever produced it.
export const normalize = (response: HttpServerResponse.HttpServerResponse) =>
  response.status < 400 ? response : isProblem(response) ? withRetryAfter(response) : Problem.response(response.status)

// A 429/503 problem carrying `retryAfter` (seconds) also says it in the Retry-After header (RFC 9110); a 429 in the
// RateLimit-* headers as well (with `limit` when the problem names the window's limit).
const withRetryAfter = (response: HttpServerResponse.HttpServerResponse) => {
  if ((response.status !== 429 && response.status !== 503) || response.headers["retry-after"] !== undefined)
    return response
  if (response.body._tag !== "Uint8Array") return response
  try {
    const { retryAfter, limit } = JSON.parse(new TextDecoder().decode(response.body.body)) as {
      retryAfter?: unknown
      limit?: unknown
    }
    if (typeof retryAfter !== "number" || !Number.isInteger(retryAfter) || retryAfter < 0) return response
    const headers: Record<string, string> = { "retry-after": String(retryAfter) }
    if (response.status === 429) {
      headers["ratelimit-remaining"] = "0"
      headers["ratelimit-reset"] = String(retryAfter)
      if (typeof limit === "number" && Number.isInteger(limit)) headers["ratelimit-limit"] = String(limit)
    }
    return HttpServerResponse.setHeaders(response, headers)
  } catch {
    return response
  }
}
