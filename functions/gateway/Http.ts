import { randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { Readable } from "node:stream"
import { Effect, identity, Layer, Option } from "effect"
import { Cookies, type Headers, HttpRouter, HttpServerResponse, HttpTraceContext } from "effect/http"
import { challenge } from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import { clientAddress } from "../../shared/ClientAddress.ts"
import type { Front } from "../../shared/Drain.ts"
import { recordRequest } from "../../shared/HttpMetrics.ts"
import * as Problem from "../../shared/Problem.ts"
import { ClientIp, isSaneId, RequestId } from "../../shared/RequestContext.ts"
import * as Server from "../../shared/Server.ts"
import { trustedProxies } from "../../shared/TrustedProxies.ts"
import * as AccountPages from "./AccountPages.ts"
import type { RouteOverride } from "./Config.ts"
import * as Cors from "./Cors.ts"
import * as Docs from "./Docs.ts"
import { EdgeAuth } from "./EdgeAuth.ts"
import { OpenApiDocument } from "./OpenApi.ts"
import { type Quota, type RateLimited, RateLimits } from "./RateLimits.ts"
import { isOwnPath, type Route, type RouteTable } from "./RouteTable.ts"
import { Upstreams } from "./Upstreams.ts"

/** What the proxy needs besides its services: the table, limits, timeouts, CORS and the trusted proxies. */
export interface ProxyOptions {
  readonly table: RouteTable
  readonly maxBodyBytes: number
  readonly timeoutMs: number
  readonly ipPerMinute: number
  readonly userPerMinute: number
  readonly overrides: ReadonlyArray<RouteOverride>
  readonly cors: Cors.CorsOptions
  readonly trustedProxies: ReadonlyArray<string>
  /** Proxy `GET /_dev/mail` to identity (never in production). */
  readonly devMail: boolean
}

/** The effective settings of one route. */
export interface RouteSettings {
  readonly timeoutMs: number
  readonly ip: { readonly bucket: string; readonly perMinute: number }
  readonly user: { readonly bucket: string; readonly perMinute: number }
}

/** The settings of a route: the gateway's defaults, then the route's manifest, then `GATEWAY_ROUTES` (later wins). */
export const settingsOf = (
  route: Route,
  options: Omit<ProxyOptions, "table" | "cors" | "trustedProxies" | "devMail">,
) => {
  const own = [
    route,
    ...options.overrides.filter(
      (o) => o.path === route.template && (o.method === undefined || o.method === route.method),
    ),
  ]
  const pick = <K extends "timeoutMs" | "ipPerMinute" | "userPerMinute">(key: K) =>
    own.reduce<number | undefined>((value, o) => o[key] ?? value, undefined)
  const name = `${route.method} ${route.template}`
  const ip = pick("ipPerMinute")
  const user = pick("userPerMinute")
  return {
    timeoutMs: pick("timeoutMs") ?? options.timeoutMs,
    ip: ip === undefined ? { bucket: "default", perMinute: options.ipPerMinute } : { bucket: name, perMinute: ip },
    user:
      user === undefined ? { bucket: "default", perMinute: options.userPerMinute } : { bucket: name, perMinute: user },
  } satisfies RouteSettings
}

// RFC 9110 §7.6.1 hop-by-hop headers, plus those the gateway sets itself.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
])
const SET_BY_GATEWAY = new Set([
  "host",
  "expect",
  "x-request-id",
  "traceparent",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
])

const connectionTokens = (value: string | Array<string> | undefined) =>
  new Set(
    (Array.isArray(value) ? value.join(",") : (value ?? ""))
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t.length > 0),
  )

/** The headers sent upstream: the client's end-to-end headers (Authorization unchanged) plus the forwarding ones. */
export const upstreamHeaders = (
  incoming: Readonly<Record<string, string | Array<string> | undefined>>,
  context: {
    readonly requestId: string
    readonly traceparent: string | undefined
    readonly peer: string | undefined
    readonly trustedPeer: boolean
  },
): Record<string, string | Array<string>> => {
  const listed = connectionTokens(incoming.connection)
  const out: Record<string, string | Array<string>> = {}
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || SET_BY_GATEWAY.has(name) || listed.has(name)) continue
    out[name] = value
  }
  const single = (value: string | Array<string> | undefined) => (Array.isArray(value) ? value.join(", ") : value)
  const priorFor = context.trustedPeer ? single(incoming["x-forwarded-for"]) : undefined
  if (context.peer !== undefined) out["x-forwarded-for"] = priorFor ? `${priorFor}, ${context.peer}` : context.peer
  out["x-forwarded-proto"] = (context.trustedPeer ? single(incoming["x-forwarded-proto"]) : undefined) ?? "http"
  const host = (context.trustedPeer ? single(incoming["x-forwarded-host"]) : undefined) ?? single(incoming.host)
  if (host !== undefined) out["x-forwarded-host"] = host
  out["x-request-id"] = context.requestId
  if (context.traceparent !== undefined) out.traceparent = context.traceparent
  return out
}

// The upstream's headers without hop-by-hop ones; Set-Cookie goes through the cookie jar (it cannot be comma-joined).
const downstream = (headers: Readonly<Record<string, string | Array<string> | undefined>>) => {
  const listed = connectionTokens(headers.connection)
  const out: Record<string, string> = {}
  let cookies = Cookies.empty
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || name === "x-request-id") continue
    if (name === "set-cookie") cookies = Cookies.fromSetCookie(value)
    else out[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return { headers: out, cookies }
}

const rateLimitHeaders = (quota: Quota) => ({
  "ratelimit-limit": String(quota.limit),
  "ratelimit-remaining": String(quota.remaining),
  "ratelimit-reset": String(quota.resetSeconds),
})

const tooMany = (limit: number, retryAfter: number) =>
  HttpServerResponse.setHeaders(Problem.response(429, "too many requests, slow down", { retryAfter, limit }), {
    "retry-after": String(retryAfter),
    ...rateLimitHeaders({ limit, remaining: 0, resetSeconds: retryAfter }),
  })

const unavailable = (detail: string, retryAfter: number) =>
  HttpServerResponse.setHeader(Problem.response(503, detail, { retryAfter }), "retry-after", String(retryAfter))

const isProblem = (contentType: string | Array<string> | undefined) =>
  typeof contentType === "string" && contentType.startsWith("application/problem+json")

const DEV_MAIL: Route = { method: "GET", template: "/_dev/mail", upstream: "identity", auth: "public" }

const hasBody = (request: IncomingMessage) => {
  const length = request.headers["content-length"]
  return request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0")
}

// Writes a response the gateway produced (problems, preflights, the upstream's streamed answer) to the client.
const write = (
  request: IncomingMessage,
  response: ServerResponse,
  answer: HttpServerResponse.HttpServerResponse,
  requestId: string,
) => {
  if (response.destroyed) {
    if (answer.body._tag === "Raw") (answer.body.body as Readable | undefined)?.resume()
    return
  }
  const headers: Record<string, string | Array<string>> = { ...answer.headers, "x-request-id": requestId }
  if (!Cookies.isEmpty(answer.cookies)) headers["set-cookie"] = Cookies.toSetCookieHeaders(answer.cookies)
  // Answered before the client's body was read (refused, too large): the connection cannot carry another request.
  if (hasBody(request) && !request.complete) headers.connection = "close"
  const body = answer.body
  if (body._tag === "Raw") {
    const stream = body.body as Readable | undefined
    response.writeHead(answer.status, headers)
    if (stream === undefined || request.method === "HEAD") {
      stream?.resume()
      response.end()
      return
    }
    // An upstream that fails mid-body cannot be answered any more: the client sees the connection end. A client that
    // goes away mid-body releases the upstream's (and its pooled connection).
    stream.on("error", () => response.destroy())
    response.once("close", () => {
      if (!stream.readableEnded) stream.destroy()
    })
    stream.pipe(response)
    return
  }
  if (body._tag === "Uint8Array") {
    headers["content-type"] = body.contentType
    headers["content-length"] = String(body.contentLength)
    response.writeHead(answer.status, headers)
    response.end(request.method === "HEAD" ? undefined : body.body)
    return
  }
  response.writeHead(answer.status, headers)
  response.end()
}

// `write`, never throwing: a header Node refuses (or any other surprise) ends the connection and is logged, instead of
// leaving the client waiting and the upstream's body unread.
const send = (
  request: IncomingMessage,
  response: ServerResponse,
  answer: HttpServerResponse.HttpServerResponse,
  requestId: string,
) =>
  Effect.suspend(() => {
    try {
      write(request, response, answer, requestId)
      return Effect.void
    } catch (error) {
      if (answer.body._tag === "Raw") (answer.body.body as Readable | undefined)?.destroy()
      response.destroy()
      return Effect.logError("answer could not be written", { error: String(error), status: answer.status })
    }
  })

/**
 * The proxy, in front of the gateway's router: every path that is not the gateway's own is resolved against the
 * route table (404, 405 with `Allow`), rate limited per address, authenticated and authorised at the edge when the
 * route needs it, then forwarded with its body streamed; the answer streams back. Every error the gateway produces
 * is problem+json. It does the kernel middleware's work itself (request id, client address, declared-size 413,
 * request metrics labelled with the route template, one server span continuing `traceparent`) without a router or a
 * response object per request: the gateway's whole cost is on this path.
 */
export const front = (options: ProxyOptions): Effect.Effect<Front, never, ProxyServices> =>
  Effect.gen(function* () {
    const upstreams = yield* Upstreams
    const auth = yield* EdgeAuth
    const permissions = yield* Permissions
    const limits = yield* RateLimits
    const context = yield* Effect.context<ProxyServices>()
    const trusted = trustedProxies(options.trustedProxies)
    const settings = new Map<Route, RouteSettings>()
    const settingsFor = (route: Route) => {
      let found = settings.get(route)
      if (found === undefined) {
        found = settingsOf(route, options)
        settings.set(route, found)
      }
      return found
    }

    // What the gateway answers for one request: its own problem or the upstream's answer; `route` labels metrics.
    const decide = (
      request: IncomingMessage,
      response: ServerResponse,
      path: string,
      clientIp: string,
      requestId: string,
      cell: RouteCell,
    ) =>
      Effect.gen(function* () {
        const method = request.method ?? "GET"
        const headers = request.headers as Record<string, string | undefined>
        const declared = Number(headers["content-length"] ?? 0)
        if (declared > options.maxBodyBytes) {
          return Problem.response(413, `request body is larger than ${options.maxBodyBytes} bytes`)
        }
        const resolved =
          options.devMail && path === DEV_MAIL.template
            ? method === "GET" || method === "HEAD"
              ? ({ _tag: "Match", route: DEV_MAIL } as const)
              : ({ _tag: "MethodNotAllowed", allow: ["GET", "HEAD"] } as const)
            : options.table.resolve(method, path)
        if (Cors.isPreflight(method, headers)) {
          if (resolved._tag === "NotFound") return Problem.response(404, "no such route")
          const allow = resolved._tag === "Match" ? options.table.allowed(path) : resolved.allow
          return Cors.preflight(options.cors, headers.origin!, allow.length > 0 ? allow : ["GET", "HEAD"])
        }
        if (resolved._tag === "NotFound") return Problem.response(404, "no such route")
        if (resolved._tag === "MethodNotAllowed") {
          if (method === "OPTIONS")
            return HttpServerResponse.empty({ status: 204, headers: { allow: resolved.allow.join(", ") } })
          return HttpServerResponse.setHeader(
            Problem.response(405, `${method} is not allowed here; use ${resolved.allow.join(", ")}`),
            "allow",
            resolved.allow.join(", "),
          )
        }
        const route = resolved.route
        cell.route = route.template
        const own = settingsFor(route)
        const quotas: Array<Quota> = []

        // The address's count goes out first; the token check is local (remembered tokens and sessions), so the
        // user's count usually leaves in the same write to Redis.
        const ipCount =
          own.ip.perMinute > 0 ? yield* limits.start("ip", own.ip.bucket, clientIp, own.ip.perMinute) : undefined
        const counted = (count: Effect.Effect<Quota, RateLimited>) =>
          Effect.map(Effect.result(count), (quota) => {
            if (quota._tag === "Failure") return tooMany(quota.failure.limit, quota.failure.retryAfter)
            quotas.push(quota.success)
            return undefined
          })

        let actor: string | undefined
        let userCount: Effect.Effect<Quota, RateLimited> | undefined
        if (route.auth !== "public") {
          const verified = yield* Effect.result(auth.authenticate(headers.authorization))
          if (verified._tag === "Failure") {
            // An address over its limit hears that before anything about its token.
            const refused = ipCount === undefined ? undefined : yield* counted(ipCount)
            if (refused !== undefined) return refused
            const error = verified.failure
            if (error._tag === "Refused") {
              yield* Effect.logInfo("access token refused at the edge", { reason: error.reason })
              return challenge(error.reason)
            }
            return unavailable(error.detail ?? "sign-in state cannot be checked, retry later", 1)
          }
          actor = verified.success.sub
          if (own.user.perMinute > 0) {
            userCount = yield* limits.start("user", own.user.bucket, actor, own.user.perMinute)
          }
        }
        for (const count of [ipCount, userCount]) {
          const refused = count === undefined ? undefined : yield* counted(count)
          if (refused !== undefined) return refused
        }
        if (actor !== undefined && typeof route.auth === "object") {
          const allowed = yield* Effect.result(permissions.check(actor, route.auth.permission))
          if (allowed._tag === "Failure") return unavailable("permissions cannot be checked, retry later", 1)
          if (!allowed.success) return Problem.response(403, `this needs the permission ${route.auth.permission}`)
        }

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
            maxBodyBytes: options.maxBodyBytes,
            timeoutMs: own.timeoutMs,
          }),
        ).pipe(actor === undefined ? identity : Effect.annotateLogs({ user_id: actor }))
        if (forwarded._tag === "Failure") {
          const error = forwarded.failure
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
        }
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

    const handle = (request: IncomingMessage, response: ServerResponse, path: string) => {
      const started = performance.now()
      const header = request.headers["x-request-id"]
      const requestId = typeof header === "string" && isSaneId(header) ? header : randomUUID()
      const peer = request.socket.remoteAddress ?? ""
      const forwardedFor = request.headers["x-forwarded-for"]
      const clientIp = clientAddress(peer, Array.isArray(forwardedFor) ? undefined : forwardedFor, trusted)
      const cell: RouteCell = { route: "unmatched" }
      const method = request.method ?? "GET"
      const parent = HttpTraceContext.fromHeaders(request.headers as unknown as Headers.Headers)
      return decide(request, response, path, clientIp, requestId, cell).pipe(
        Effect.map((answer) => Cors.decorate(answer, options.cors, request.headers.origin)),
        Effect.catchCause((cause) => Effect.as(Effect.logError("unhandled failure", cause), Problem.response(500))),
        Effect.tap((answer) =>
          Effect.andThen(
            send(request, response, answer, requestId),
            recordRequest(method, cell.route, answer.status, (performance.now() - started) / 1000),
          ),
        ),
        Effect.tap((answer) =>
          Effect.annotateCurrentSpan({ "http.route": cell.route, "http.response.status_code": answer.status }),
        ),
        Effect.withSpan(
          `http.server ${method}`,
          {
            kind: "server",
            parent: Option.getOrUndefined(parent),
            attributes: { "http.request.method": method, "url.path": path },
          },
          { captureStackTrace: false },
        ),
        Effect.provideService(RequestId, requestId),
        Effect.provideService(ClientIp, clientIp),
        Effect.annotateLogs({ request_id: requestId }),
      )
    }

    return (request, response) => {
      const url = request.url ?? "/"
      const q = url.indexOf("?")
      const path = q === -1 ? url : url.slice(0, q)
      if (isOwnPath(path)) return false
      const fiber = Effect.runForkWith(context)(handle(request, response, path))
      // The response closed before the work ended (the client went away, or shutdown answered it): stop the work, and
      // the upstream request with it. A fiber that already ended is not affected.
      response.once("close", () => fiber.interruptUnsafe())
      return true
    }
  })

interface RouteCell {
  route: string
}

/** What the proxy needs from the gateway's layers. */
export type ProxyServices = Upstreams | EdgeAuth | Permissions | RateLimits

/**
 * The gateway's own routes: `/openapi.json`, `/docs`, `/readyz/upstreams`, the mails' `/verify-email` and
 * `/reset-password` pages (the proxy takes every other path).
 */
export const HttpLive = Layer.mergeAll(
  Layer.unwrap(
    Effect.map(Effect.service(OpenApiDocument), (document) =>
      HttpRouter.add(
        "GET",
        "/openapi.json",
        Effect.map(document.get, (doc) => HttpServerResponse.jsonUnsafe(doc)),
      ),
    ),
  ),
  Layer.unwrap(
    Effect.map(Effect.service(Upstreams), (upstreams) =>
      HttpRouter.add(
        "GET",
        "/readyz/upstreams",
        Effect.map(upstreams.circuits, (circuits) => HttpServerResponse.jsonUnsafe({ circuits })),
      ),
    ),
  ),
  Docs.routes,
  AccountPages.routes,
)

/**
 * The gateway's HTTP server: the proxy in front, its own routes and the system routes behind it; the HTTP client is
 * loaded once it listens.
 */
export const serve = (options: ProxyOptions, server: { readonly port: number; readonly shutdownTimeoutMs: number }) =>
  Layer.effectDiscard(Effect.flatMap(Upstreams, (upstreams) => upstreams.warm)).pipe(
    Layer.provideMerge(
      Server.serve(HttpLive, {
        port: server.port,
        maxBodyBytes: options.maxBodyBytes,
        shutdownTimeoutMs: server.shutdownTimeoutMs,
        trustedProxies: options.trustedProxies,
        front: front(options),
      }),
    ),
  )
