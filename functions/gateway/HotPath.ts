import type { IncomingMessage, ServerResponse } from "node:http"
import { Cause, Clock, Context, Effect, Exit, LogLevel, References, Tracer } from "effect"
import { Hex } from "effect/encoding"
import { Cookies, type Headers, type HttpServerResponse, HttpTraceContext } from "effect/http"
import { Permissions } from "../../shared/access/Permissions.ts"
import { ErrorBus } from "../../shared/ErrorBus.ts"
import type { RequestRecorder } from "../../shared/HttpMetrics.ts"
import * as Problem from "../../shared/Problem.ts"
import * as Cors from "./Cors.ts"
import { EdgeAuth } from "./EdgeAuth.ts"
import { forwardFailure, isProblem, tooMany } from "./EdgeProblems.ts"
import { isBodyless, tightestOf, upstreamRequestOf } from "./Forwarding.ts"
import { downstream, rateLimitHeaders } from "./ProxyHeaders.ts"
import { type Quota, RateLimits } from "./RateLimits.ts"
import { countingOf, type RouteSettings } from "./RouteSettings.ts"
import type { Route } from "./RouteTable.ts"
import { hasBody, sendNow, stream } from "./SocketAnswers.ts"
import { isFailure, type UpstreamFailure, type UpstreamResponse, Upstreams } from "./Upstreams.ts"

/** A route as the hot path needs it: the route, its settings, and its RED metrics for this method. */
export interface HotRoute {
  readonly route: Route
  readonly own: RouteSettings
  /** The request metrics labelled with this method and route template, resolved once per status. */
  readonly record: RequestRecorder
}

/** One request as the front saw it (request id, client address and trust computed once for either path). */
export interface Arrival {
  readonly request: IncomingMessage
  readonly response: ServerResponse
  readonly method: string
  readonly path: string
  readonly requestId: string
  readonly clientIp: string
  readonly trustedPeer: boolean
  readonly started: number
}

/**
 * The gateway's hot path: a request whose every check is answered from memory, forwarded and answered with plain
 * callbacks, without a fiber (an Effect fiber per request was a fifth of the gateway's CPU). The same checks as the
 * Effect path (`Http.ts`'s `decide`, `Admission`, `Forwarding`), in the same order: route, declared size, token
 * (remembered and its session's "not revoked" still reused), the address's and the user's counts (synced limits,
 * decided locally), the permission (a cached answer), then the upstream with the forwarding headers, request id and
 * `traceparent` of a server span of its own; metrics and the span as the Effect path records them.
 *
 * It takes a request only when all of that is known at once; otherwise it returns false having done nothing (no
 * count, no write) and the Effect path takes the request: preflights and `OPTIONS`, unknown routes and methods,
 * oversized bodies, tokens not yet verified or refused, permissions not cached or denied, exact (per-route) limits,
 * an upstream whose client is not loaded yet. Once it took a request, what is rare on it (a refusal by the counts, an
 * upstream failure, an answer that cannot be written) is answered with the Effect path's own problems, and upstream
 * failures are logged by them.
 */
export const makeHotPath = (deps: {
  readonly services: Context.Context<Upstreams | EdgeAuth | Permissions | RateLimits>
  readonly cors: Cors.CorsOptions
  /** The matched route of a path, or undefined when it needs the Effect path (no match, wrong method). */
  readonly routeOf: (method: string, path: string) => HotRoute | undefined
}) => {
  const { services, cors } = deps
  const upstreams = Context.get(services, Upstreams)
  const auth = Context.get(services, EdgeAuth)
  const permissions = Context.get(services, Permissions)
  const limits = Context.get(services, RateLimits)
  const errors = Context.get(services, ErrorBus)
  // The span settings of the layer's fiber, read once: they do not change per request.
  const tracer = Context.get(services, Tracer.Tracer)
  const clock = Context.get(services, Clock.Clock)
  const timing = Context.get(services, References.TracerTimingEnabled)
  const spanAnnotations = Object.entries(Context.get(services, References.TracerSpanAnnotations))
  const spanLinks = Context.get(services, References.TracerSpanLinks)
  // As `Effect.withSpan` decides it for a span of the default trace level (Info).
  const sampledByLevel = !LogLevel.isGreaterThan(Context.get(services, Tracer.MinimumTraceLevel), "Info")
  const enabled = Context.get(services, References.TracerEnabled)
  // Whether a tracer exports spans (OTLP, a test's): only then is a span object made per request. The native tracer
  // keeps its spans in memory where nothing reads the hot path's (its ids reach the upstream and, on the rare logged
  // answers, the log lines: both come from the ids alone).
  const exporting = tracer !== Tracer.nativeTracer

  const run = <A>(effect: Effect.Effect<A>, then: (value: A) => void) =>
    Effect.runForkWith(services)(effect).addObserver((exit) => {
      if (Exit.isSuccess(exit)) then(exit.value)
    })

  return (arrival: Arrival): boolean => {
    const { request, response, method, path, requestId, clientIp } = arrival
    if (!enabled || method === "OPTIONS") return false
    const headers = request.headers
    const hot = deps.routeOf(method, path)
    if (hot === undefined) return false
    const { route, own } = hot
    const length = headers["content-length"]
    if (length !== undefined && Number(length) > own.maxBodyBytes) return false
    if (!upstreams.readyNow(route.upstream)) return false
    const countIp = own.ip.perMinute > 0
    if (countIp && (countingOf(own.ip) !== "synced" || !limits.countsNow)) return false
    let actor: string | undefined
    let countUser = false
    if (route.auth !== "public") {
      const claims = auth.authenticateNow(headers.authorization)
      if (claims === undefined) return false
      actor = claims.sub
      countUser = own.user.perMinute > 0
      if (countUser && (countingOf(own.user) !== "synced" || !limits.countsNow)) return false
      if (typeof route.auth === "object" && permissions.checkNow(actor, route.auth.permission) !== true) return false
    }

    // Both counts are taken before either refusal is answered, as the Effect path starts both before waiting. An
    // address count not decided at once (a limiter without local counting) leaves the request to the Effect path.
    const ipCount = countIp
      ? limits.countNow("ip", own.ip.bucket, clientIp, own.ip.perMinute, countingOf(own.ip))
      : undefined
    if (countIp && ipCount === undefined) return false

    // Taken: from here the request is answered on this path.
    const parent = HttpTraceContext.fromHeaders(headers as unknown as Headers.Headers)
    let sampled = parent._tag === "Some" && parent.value.sampled === false ? false : sampledByLevel
    let span: Tracer.Span | undefined
    let traceId: string
    let spanId: string
    if (exporting) {
      span = tracer.span({
        name: `http.server ${method}`,
        parent,
        annotations: Context.empty(),
        links: spanLinks.length === 0 ? [] : [...spanLinks],
        startTime: timing ? clock.currentTimeNanosUnsafe() : 0n,
        kind: "server",
        root: false,
        sampled,
      })
      for (const [key, value] of spanAnnotations) span.attribute(key, value)
      span.attribute("http.request.method", method)
      span.attribute("url.path", path)
      traceId = span.traceId
      spanId = span.spanId
      sampled = span.sampled
    } else {
      // The ids the native span would draw: the parent's trace, a span id of its own.
      traceId = parent._tag === "Some" ? parent.value.traceId : Hex.random(32)
      spanId = Hex.random(16)
    }

    const finished = (status: number) => {
      hot.record(services, status, (performance.now() - arrival.started) / 1000)
      if (span === undefined) return
      span.attribute("http.route", route.template)
      span.attribute("http.response.status_code", status)
      span.end(timing ? clock.currentTimeNanosUnsafe() : 0n, Exit.void)
    }
    const logged = <A>(effect: Effect.Effect<A>) =>
      effect.pipe(
        Effect.annotateLogs(
          actor === undefined ? { request_id: requestId } : { request_id: requestId, user_id: actor },
        ),
        Effect.withParentSpan(span ?? Tracer.externalSpan({ traceId, spanId, sampled })),
      )
    // An answer of the gateway's own (a refusal, a problem for an upstream failure), as the Effect path writes it.
    const reply = (answer: HttpServerResponse.HttpServerResponse) => {
      const decorated = Cors.decorate(answer, cors, headers.origin)
      const error = sendNow(request, response, decorated, requestId)
      finished(decorated.status)
      if (error !== undefined) {
        run(
          logged(Effect.logError("answer could not be written", { error: String(error), status: decorated.status })),
          () => {},
        )
      }
    }

    try {
      const quotas: Array<Quota> = []
      const userCount =
        countUser && actor !== undefined
          ? limits.countNow("user", own.user.bucket, actor, own.user.perMinute, countingOf(own.user))
          : undefined
      // The same limiter as the address's: decided at once too, or the limit would be skipped.
      if (countUser && userCount === undefined) throw new Error("a synced user limit was not counted at once")
      for (const count of [ipCount, userCount]) {
        if (count === undefined) continue
        if ("_tag" in count) {
          reply(tooMany(count.limit, count.retryAfter))
          return true
        }
        quotas.push(count)
      }

      const forward = upstreamRequestOf(request, response, {
        upstream: route.upstream,
        method,
        path,
        requestId,
        // As HttpTraceContext.toHeaders writes it, without its B3 header.
        traceparent: `00-${traceId.padStart(32, "0")}-${spanId}-${sampled ? "01" : "00"}`,
        trustedPeer: arrival.trustedPeer,
        maxBodyBytes: own.maxBodyBytes,
        timeoutMs: own.timeoutMs,
      })
      let answered = false
      const abort = upstreams.forwardNow(forward, (outcome: UpstreamResponse | UpstreamFailure) => {
        answered = true
        // The upstream failed: its problem (and its log line) is the Effect path's.
        if (isFailure(outcome)) return run(logged(forwardFailure(outcome)), reply)
        answer(outcome)
      })
      // The client went away (or shutdown answered it) before the upstream did: the upstream request is aborted.
      response.once("close", () => {
        if (!answered) abort()
      })

      // The upstream's answer, streamed back with the tightest quota's RateLimit-* headers and the CORS ones.
      const answer = (upstream: UpstreamResponse) => {
        if (upstream.status >= 400 && !isProblem(upstream.headers["content-type"])) {
          upstream.body.resume()
          return reply(Problem.response(upstream.status))
        }
        if (response.destroyed) {
          upstream.body.resume()
          return finished(upstream.status)
        }
        const { headers: out, cookies } = downstream(upstream.headers)
        const back: Record<string, string | Array<string>> = out
        const tightest = tightestOf(quotas)
        if (tightest !== undefined) Object.assign(back, rateLimitHeaders(tightest))
        const corsHeaders = Cors.headersFor(cors, headers.origin)
        if (corsHeaders !== undefined) Object.assign(back, corsHeaders)
        back["x-request-id"] = requestId
        if (!Cookies.isEmpty(cookies)) back["set-cookie"] = Cookies.toSetCookieHeaders(cookies)
        // Answered before the client's body was read: the connection cannot carry another request.
        if (hasBody(request) && !request.complete) back.connection = "close"
        const bodyless = isBodyless(method, upstream.status)
        if (bodyless) upstream.body.resume()
        try {
          stream(request, response, upstream.status, back, bodyless ? undefined : upstream.body)
        } catch (error) {
          upstream.body.destroy()
          response.destroy()
          run(
            logged(Effect.logError("answer could not be written", { error: String(error), status: upstream.status })),
            () => {},
          )
        }
        finished(upstream.status)
      }
    } catch (error) {
      // What the Effect path answers for a defect: 500, logged and reported (with the ids this path drew itself).
      const cause = Cause.die(error)
      errors.captureNow({ cause, origin: "http", route: route.template }, { requestId, traceId, spanId })
      run(logged(Effect.logError("unhandled failure", cause)), () => {})
      if (!response.headersSent) reply(Problem.response(500))
      else response.destroy()
    }
    return true
  }
}
