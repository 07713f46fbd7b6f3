import { Readable } from "node:stream"
import { Effect, Option } from "effect"
import { type HttpServerResponse, HttpTraceContext } from "effect/http"
import * as Problem from "../../../shared/Problem.ts"
import { trustedProxies } from "../../../shared/TrustedProxies.ts"
import { admission } from "../Admission.ts"
import { forwardFailure } from "../EdgeProblems.ts"
import { upstreamHeaders } from "../ProxyHeaders.ts"
import type { ProxyOptions } from "../ProxyOptions.ts"
import { routeSettings } from "../RouteSettings.ts"
import { Upstreams } from "../Upstreams.ts"

/** One REST request a GraphQL field stands for: method, path with its query, the operation's headers, a JSON body. */
export interface RestCall {
  readonly method: string
  /** Path and query string, as a REST client would send them. */
  readonly path: string
  /** The operation's own headers (Idempotency-Key, If-Match), lower-case. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: string | undefined
}

/** Who sent the GraphQL request: what the REST request would have carried from the same client. */
export interface Caller {
  readonly authorization: string | undefined
  readonly requestId: string
  readonly clientIp: string
  /** The connection's peer address and whether it is a trusted proxy (its X-Forwarded-* are kept then). */
  readonly peer: string | undefined
  readonly incoming: Readonly<Record<string, string | undefined>>
}

/** The REST answer: its status, content type and body text (the gateway's own problem when it refused). */
export interface RestAnswer {
  readonly status: number
  readonly contentType: string | undefined
  readonly text: string
}

// The largest answer a field reads from a function (a page of a list is far smaller).
const MAX_ANSWER_BYTES = 8 * 1024 * 1024

// The client's headers a REST request through the proxy would carry too (the GraphQL request's own content type,
// length and accept do not apply to the REST request).
const CARRIED = ["host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "user-agent", "accept-language"]

// A problem the gateway answers itself (`Problem.response`): its status and JSON body.
const answerOf = (response: HttpServerResponse.HttpServerResponse): RestAnswer => {
  const body = response.body
  const text = body._tag === "Uint8Array" ? new TextDecoder().decode(body.body) : ""
  return { status: response.status, contentType: "application/problem+json", text }
}

const readAll = (body: Readable): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    let size = 0
    body.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_ANSWER_BYTES) body.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`))
      else chunks.push(chunk)
    })
    body.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    body.on("error", reject)
  })

/**
 * Sends a GraphQL field's REST request the way the proxy sends a client's (`Http.ts`'s `decide`, `Forwarding.ts`):
 * the route from the table, its settings, the same admission (address and user rate limits, the token at the edge,
 * the route's permission), then the upstream pool with its retries and circuit breaker and the forwarding headers
 * (X-Request-Id, `traceparent` of the field's span, X-Forwarded-*). The function behind checks everything again
 * (zero trust). Nothing here fails: every refusal is an answer, as it would be over REST.
 */
export const dispatcher = (options: ProxyOptions) =>
  Effect.gen(function* () {
    const admit = yield* admission
    const upstreams = yield* Upstreams
    const trusted = trustedProxies(options.trustedProxies)
    const settingsFor = routeSettings(options)

    return (call: RestCall, caller: Caller): Effect.Effect<RestAnswer> =>
      Effect.gen(function* () {
        const q = call.path.indexOf("?")
        const resolved = options.table.resolve(call.method, q === -1 ? call.path : call.path.slice(0, q))
        // The schema comes from the document the table filtered: a miss is a path parameter that makes no route.
        if (resolved._tag !== "Match") return answerOf(Problem.response(404, "no such route"))
        const route = resolved.route
        const own = settingsFor(route)
        const body = call.body === undefined ? undefined : Buffer.from(call.body, "utf8")
        if (body !== undefined && body.length > own.maxBodyBytes) {
          return answerOf(Problem.response(413, `request body is larger than ${own.maxBodyBytes} bytes`))
        }
        const admitted = yield* admit(route, own, caller.authorization, caller.clientIp)
        if (admitted._tag === "Refused") return answerOf(admitted.answer)
        const span = yield* Effect.option(Effect.currentSpan)
        const trustedPeer = caller.peer !== undefined && trusted(caller.peer)
        const incoming: Record<string, string | undefined> = {}
        for (const name of CARRIED) incoming[name] = caller.incoming[name]
        const headers = upstreamHeaders(
          {
            ...incoming,
            ...call.headers,
            accept: "application/json",
            ...(caller.authorization === undefined ? {} : { authorization: caller.authorization }),
            ...(body === undefined
              ? {}
              : { "content-type": "application/json", "content-length": String(body.length) }),
          },
          {
            requestId: caller.requestId,
            traceparent: Option.isSome(span) ? HttpTraceContext.toHeaders(span.value).traceparent : undefined,
            peer: caller.peer,
            trustedPeer,
          },
        )
        const forwarded = yield* Effect.result(
          upstreams.forward({
            upstream: route.upstream,
            method: call.method,
            path: call.path,
            headers,
            body: body === undefined ? undefined : Readable.from([body]),
            maxBodyBytes: own.maxBodyBytes,
            timeoutMs: own.timeoutMs,
          }),
        )
        if (forwarded._tag === "Failure") return answerOf(yield* forwardFailure(forwarded.failure))
        const answer = forwarded.success
        const type = answer.headers["content-type"]
        const text = yield* Effect.tryPromise(() => readAll(answer.body)).pipe(
          Effect.catch((error) =>
            Effect.as(
              Effect.logWarning("upstream answer unreadable", { upstream: route.upstream, error: String(error) }),
              undefined,
            ),
          ),
        )
        if (text === undefined) {
          return answerOf(Problem.response(502, `the ${route.upstream} service's answer could not be read`))
        }
        return { status: answer.status, contentType: Array.isArray(type) ? type[0] : type, text }
      }).pipe(
        Effect.annotateLogs({ request_id: caller.requestId }),
        Effect.withSpan(`graphql.rest ${call.method}`, {
          kind: "client",
          attributes: { "http.request.method": call.method, "url.path": call.path.split("?")[0] },
        }),
      )
  })
