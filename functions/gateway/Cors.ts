import { HttpServerResponse } from "effect/http"
import * as Problem from "../../shared/Problem.ts"

/** Which browser origins may call the API (`CORS_ORIGINS`; `*` allows any). */
export interface CorsOptions {
  readonly origins: ReadonlyArray<string>
  /** How long a browser may cache a preflight answer, seconds (default 600). */
  readonly maxAgeSeconds?: number
}

/** Request headers a browser may send (besides the CORS-safelisted ones). */
export const ALLOWED_HEADERS = "authorization, content-type, x-request-id, traceparent, tracestate, idempotency-key"

/** Response headers scripts may read. */
export const EXPOSED_HEADERS =
  "x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset, www-authenticate, location"

/** True when the origin is configured (or any origin is). */
export const isAllowed = (options: CorsOptions, origin: string): boolean =>
  options.origins.includes("*") || options.origins.includes(origin)

/** True for a CORS preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`. */
export const isPreflight = (method: string, headers: Readonly<Record<string, string | undefined>>) =>
  method === "OPTIONS" && headers.origin !== undefined && headers["access-control-request-method"] !== undefined

/**
 * The answer to a preflight, given the methods the path accepts: 204 with the allowed origin, methods and headers,
 * or 403 `forbidden` when the origin is not configured.
 */
export const preflight = (options: CorsOptions, origin: string, allow: ReadonlyArray<string>) =>
  isAllowed(options, origin)
    ? HttpServerResponse.empty({
        status: 204,
        headers: {
          "access-control-allow-origin": origin,
          "access-control-allow-methods": allow.join(", "),
          "access-control-allow-headers": ALLOWED_HEADERS,
          "access-control-max-age": String(options.maxAgeSeconds ?? 600),
          vary: "Origin",
        },
      })
    : HttpServerResponse.setHeader(Problem.response(403, `origin ${origin} is not allowed`), "vary", "Origin")

/** The CORS headers of an actual (non-preflight) request: none without `Origin` or configured origins. */
export const headersFor = (
  options: CorsOptions,
  origin: string | undefined,
): Readonly<Record<string, string>> | undefined =>
  origin === undefined || options.origins.length === 0
    ? undefined
    : isAllowed(options, origin)
      ? { "access-control-allow-origin": origin, "access-control-expose-headers": EXPOSED_HEADERS, vary: "Origin" }
      : { vary: "Origin" }

/** Adds the CORS headers of an actual (non-preflight) request from an allowed origin. */
export const decorate = (
  response: HttpServerResponse.HttpServerResponse,
  options: CorsOptions,
  origin: string | undefined,
): HttpServerResponse.HttpServerResponse => {
  const headers = headersFor(options, origin)
  return headers === undefined ? response : HttpServerResponse.setHeaders(response, headers)
}
