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
import { Upstreams } from "./Upstreams.ts"

/** One admitted request to forward: the client's, with its route, timeout, actor and counted quotas. */
export interface Forward {
  readonly request: IncomingMessage
  readonly response: ServerResponse
  readonly method: string
  readonly path: string
  readonly requestId: string
  readonly route: Route
  readonly timeoutMs: number
  readonly actor: string | undefined
  readonly quotas: ReadonlyArray<Quota>
}

/**
 * Forwarding: the request goes to its upstream with its body streamed and the forwarding headers; the answer comes
 * back streamed with the tightest quota's RateLimit-* headers, or as the gateway's problem when the upstream failed.
 */
export const forwarding = (maxBodyBytes: number, trusted: TrustedProxies) =>
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
        // A client that sent `Expect: 100-continue` waits for it before its body: now that the body will be forwarded.
        if (hasBody(request) && request.headers.expect?.toLowerCase() === "100-continue" && !response.headersSent) {
          response.writeContinue()
        }
        const forwarded = yield* Effect.result(
          upstreams.forward({
            upstream: route.upstream,
            method,
            path: request.url ?? path,
            headers: upstreamHeaders(request.headers, {
              requestId,
              traceparent,
              peer,
              trustedPeer: peer !== undefined && trusted(peer),
            }),
            body: hasBody(request) ? request : undefined,
            maxBodyBytes,
            timeoutMs: forward.timeoutMs,
          }),
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
        const bodyless = method === "HEAD" || answer.status === 204 || answer.status === 205 || answer.status === 304
        const tightest = quotas.reduce<Quota | undefined>(
          (a, b) => (a === undefined || b.remaining < a.remaining ? b : a),
          undefined,
        )
        if (bodyless) answer.body.resume()
        return HttpServerResponse.raw(bodyless ? undefined : answer.body, {
          status: answer.status,
          headers: tightest === undefined ? out : { ...out, ...rateLimitHeaders(tightest) },
          cookies,
        })
      })
  })
