import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect, identity, Option } from "effect"
import { HttpServerResponse, HttpTraceContext } from "effect/http"
import * as Problem from "../../shared/Problem.ts"
import type { TrustedProxies } from "../../shared/TrustedProxies.ts"
import { forwardFailure, isProblem } from "./EdgeProblems.ts"
import { downstream, rateLimitHeaders, upstreamHeaders } from "./ProxyHeaders.ts"
import type { Quota } from "./RateLimits.ts"
import type { Route } from "./RouteTable.ts"
import { hasBody } from "./SocketAnswers.ts"
import { type ForwardRequest, Upstreams } from "./Upstreams.ts"

/** One admitted request to forward: the client's, with its route, timeout, body limit, actor and counted quotas. */
export interface Forward {
  readonly request: IncomingMessage
  readonly response: ServerResponse
  readonly method: string
  readonly path: string
  readonly requestId: string
  readonly route: Route
  readonly timeoutMs: number
  readonly maxBodyBytes: number
  readonly actor: string | undefined
  readonly quotas: ReadonlyArray<Quota>
}

/**
 * The request to send upstream for an admitted one: path with query as the client sent it, the forwarding headers
 * (`traceparent` of the gateway's server span), the body streamed when there is one. A client that sent
 * `Expect: 100-continue` waits for it before its body: it is sent now that the body will be forwarded.
 */
export const upstreamRequestOf = (
  request: IncomingMessage,
  response: ServerResponse,
  options: {
    readonly upstream: string
    readonly method: string
    readonly path: string
    readonly requestId: string
    readonly traceparent: string | undefined
    readonly trustedPeer: boolean
    readonly maxBodyBytes: number
    readonly timeoutMs: number
  },
): ForwardRequest => {
  const peer = request.socket.remoteAddress
  const body = hasBody(request)
  if (body && request.headers.expect?.toLowerCase() === "100-continue" && !response.headersSent) {
    response.writeContinue()
  }
  return {
    upstream: options.upstream,
    method: options.method,
    path: request.url ?? options.path,
    headers: upstreamHeaders(request.headers, {
      requestId: options.requestId,
      traceparent: options.traceparent,
      peer,
      trustedPeer: options.trustedPeer,
    }),
    body: body ? request : undefined,
    maxBodyBytes: options.maxBodyBytes,
    timeoutMs: options.timeoutMs,
  }
}

/** The quota with the fewest requests left: the one the RateLimit-* headers tell. */
export const tightestOf = (quotas: ReadonlyArray<Quota>): Quota | undefined => {
  let tightest: Quota | undefined
  for (const quota of quotas) if (tightest === undefined || quota.remaining < tightest.remaining) tightest = quota
  return tightest
}

/** No body goes to the client (HEAD, 204, 205, 304): the upstream's is drained so its connection goes back. */
export const isBodyless = (method: string, status: number) =>
  method === "HEAD" || status === 204 || status === 205 || status === 304

/**
 * Forwarding: the request goes to its upstream with its body streamed and the forwarding headers; the answer comes
 * back streamed with the tightest quota's RateLimit-* headers, or as the gateway's problem when the upstream failed.
 */
export const forwarding = (trusted: TrustedProxies) =>
  Effect.gen(function* () {
    const upstreams = yield* Upstreams
    return (forward: Forward) =>
      Effect.gen(function* () {
        const { request, response, method, path, requestId, route, actor, quotas } = forward
        const headers = request.headers as Record<string, string | undefined>
        const span = yield* Effect.option(Effect.currentSpan)
        const traceparent = Option.isSome(span)
          ? HttpTraceContext.toHeaders(span.value).traceparent
          : (headers.traceparent ?? undefined)
        const peer = request.socket.remoteAddress
        const forwarded = yield* Effect.result(
          upstreams.forward(
            upstreamRequestOf(request, response, {
              upstream: route.upstream,
              method,
              path,
              requestId,
              traceparent,
              trustedPeer: peer !== undefined && trusted(peer),
              maxBodyBytes: forward.maxBodyBytes,
              timeoutMs: forward.timeoutMs,
            }),
          ),
        ).pipe(actor === undefined ? identity : Effect.annotateLogs({ user_id: actor }))
        if (forwarded._tag === "Failure") return yield* forwardFailure(forwarded.failure)
        const answer = forwarded.success
        // A bare error from upstream (not problem+json) is replaced by the platform's problem for its status.
        if (answer.status >= 400 && !isProblem(answer.headers["content-type"])) {
          answer.body.resume()
          return Problem.response(answer.status)
        }
        const { headers: out, cookies } = downstream(answer.headers)
        // No body to send (204, 205, 304, HEAD): drain the upstream's so its connection goes back to the pool.
        const bodyless = isBodyless(method, answer.status)
        const tightest = tightestOf(quotas)
        if (bodyless) answer.body.resume()
        return HttpServerResponse.raw(bodyless ? undefined : answer.body, {
          status: answer.status,
          headers: tightest === undefined ? out : { ...out, ...rateLimitHeaders(tightest) },
          cookies,
        })
      })
  })
