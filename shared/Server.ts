import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { ByteSize, type Cause, Context, Duration, Effect, identity, Layer, Metric, type Types } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiMiddleware } from "effect/http-api"
import { PrometheusMetrics } from "effect/observability"
import * as RouteGuard from "./access/RouteGuard.ts"
import { Health } from "./Health.ts"
import type { RouteSpec } from "./Module.ts"
import { NUL_MESSAGE, nulIn } from "./NulText.ts"
import { KernelProblems } from "./OpenApiContract.ts"
import * as Problem from "./Problem.ts"
import { ClientIp, isSaneId, RequestId } from "./RequestContext.ts"
import { type TrustedProxies, trustedProxies } from "./TrustedProxies.ts"

/** Any HttpApi definition (structurally: something with groups). */
export type ApiLike = { readonly groups: object }

/** Where and how a function serves HTTP. */
export interface ServerOptions {
  readonly port: number
  /** The HttpApi behind the routes: its endpoints let a wrong method get 405 with `Allow` instead of 404. */
  readonly api?: ApiLike
  /** Largest accepted request body; larger ones get 413 before the body is read. Default 1 MiB. */
  readonly maxBodyBytes?: number
  /** How long shutdown waits for in-flight requests. */
  readonly shutdownTimeoutMs?: number
  /** Proxies (the gateway, a load balancer; addresses or CIDR ranges) whose X-Forwarded-For is believed. */
  readonly trustedProxies?: ReadonlyArray<string>
}

const requests = Metric.counter("http_server_requests_total", { description: "HTTP requests served" })
const errors = Metric.counter("http_server_errors_total", { description: "HTTP responses with status >= 500" })
const duration = Metric.histogram("http_server_request_duration_seconds", {
  description: "HTTP request duration",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
})

// The metrics with their attributes, made once per method, route and status (not per request).
const labelled = new Map<
  string,
  {
    readonly requests: Metric.Counter<number>
    readonly errors?: Metric.Counter<number>
    readonly duration: Metric.Histogram<number>
  }
>()

/** Counts one answered request in the RED metrics (`route` is the route template, never the raw path). */
export const recordRequest = (method: string, route: string, status: number, seconds: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    const key = `${method} ${route} ${status}`
    let metrics = labelled.get(key)
    if (metrics === undefined) {
      const attributes = { method, route, status: String(status) }
      metrics = {
        requests: Metric.withAttributes(requests, attributes),
        ...(status >= 500 ? { errors: Metric.withAttributes(errors, attributes) } : {}),
        duration: Metric.withAttributes(duration, { method, route }),
      }
      if (labelled.size < 10_000) labelled.set(key, metrics)
    }
    const counted = Effect.andThen(Metric.update(metrics.requests, 1), Metric.update(metrics.duration, seconds))
    return metrics.errors === undefined ? counted : Effect.andThen(counted, Metric.update(metrics.errors, 1))
  })

// Per-request cell the route middleware fills with the matched route template (low-cardinality metric label).
const RouteCell = Context.Reference<{ route: string }>("shared/Server/RouteCell", {
  defaultValue: () => ({ route: "unmatched" }),
})

/**
 * The client's address: the socket's peer, or the one a trusted proxy forwarded (`X-Forwarded-For`, read right to
 * left, skipping trusted proxies).
 */
export const clientAddress = (peer: string, forwardedFor: string | undefined, trusted: TrustedProxies): string => {
  if (forwardedFor === undefined || !trusted(peer)) return peer
  const hops = forwardedFor.split(",")
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim()
    if (!trusted(hop)) return hop.slice(0, 64)
  }
  return peer
}

// Without a socket (Lambda) the address is the one the entry provided.
const clientIp = (request: HttpServerRequest.HttpServerRequest, trusted: TrustedProxies) =>
  request.remoteAddress._tag === "None"
    ? ClientIp
    : Effect.succeed(clientAddress(request.remoteAddress.value, request.headers["x-forwarded-for"], trusted))

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

// Turns a failure or defect that escaped the handlers into a response; defects are logged, never shown.
const causeToResponse = (cause: Cause.Cause<unknown>) =>
  Effect.gen(function* () {
    if (exceededBodyLimit(cause)) return Problem.response(413, "request body is too large")
    const [response] = yield* HttpServerError.causeResponse(cause)
    if (response.status >= 500) yield* Effect.logError("unhandled failure", cause)
    return response
  })

// Every error response leaves as problem+json with a stable code, whatever produced it.
const normalize = (response: HttpServerResponse.HttpServerResponse) =>
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

/** A route template (`/users/:id`) of an endpoint, as a matcher, with its method. */
interface KnownRoute {
  readonly method: string
  readonly pattern: RegExp
}

/** The method and path matcher of every endpoint of an HttpApi. */
export const knownRoutes = (api: ApiLike): Array<KnownRoute> => {
  const routes: Array<KnownRoute> = []
  HttpApi.reflect(api as HttpApi.Top, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => routes.push({ method: endpoint.method, pattern: templateToRegExp(endpoint.path) }),
  })
  return routes
}

const templateToRegExp = (template: string) =>
  new RegExp(
    `^${template
      .split("/")
      .map((s) => (s.startsWith(":") ? "[^/]+" : s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/")}/?$`,
  )

// 404 for a path that exists under other methods becomes 405 with the allowed methods.
const methodNotAllowed = (routes: ReadonlyArray<KnownRoute>, method: string, url: string) => {
  const path = url.split("?")[0] ?? url
  const allow = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))]
  if (allow.length === 0 || allow.includes(method)) return undefined
  return HttpServerResponse.setHeader(
    Problem.response(405, `${method} is not allowed here; use ${allow.join(", ")}`),
    "allow",
    allow.join(", "),
  )
}

const BODYLESS = new Set(["GET", "HEAD", "OPTIONS", "DELETE"])

// NUL characters in the path, the query or a JSON body: 400 before any handler (see NulText). The body read here is
// the one the handler decodes (the request caches it); one that cannot be read is left to the handler's own error.
const refuseNul = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function* () {
    const json = !BODYLESS.has(request.method) && /json/i.test(request.headers["content-type"] ?? "")
    const body = json ? yield* Effect.orElseSucceed(request.text, () => undefined) : undefined
    const where = nulIn(request.url, body)
    if (where === undefined) return undefined
    return Problem.response(400, "The request does not match the API contract", {
      code: "validation_failed",
      type: "urn:problem:validation_failed",
      title: "Validation failed",
      errors: [{ path: where, message: NUL_MESSAGE }],
    })
  })

/** Global middleware: request id, log annotation, body limit, problem+json for every error, RED metrics. */
export const requestMiddleware = (
  maxBodyBytes: number,
  routes: ReadonlyArray<KnownRoute> = [],
  trusted: TrustedProxies = () => false,
) =>
  HttpRouter.middleware<{ handles: unknown }>()(
    (
      httpEffect,
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest> =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const header = request.headers["x-request-id"]
        const requestId = isSaneId(header) ? header : randomUUID()
        const cell = { route: "unmatched" }
        const started = performance.now()
        const declared = Number(request.headers["content-length"] ?? 0)
        const handled =
          declared > maxBodyBytes
            ? Problem.response(413, `request body is larger than ${maxBodyBytes} bytes`)
            : yield* Effect.flatMap(refuseNul(request), (refused) =>
                refused === undefined ? httpEffect : Effect.succeed(refused),
              ).pipe(
                Effect.provideService(RouteCell, cell),
                Effect.provideService(RequestId, requestId),
                Effect.provideService(ClientIp, yield* clientIp(request, trusted)),
                Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)),
                Effect.annotateLogs({ request_id: requestId }),
                Effect.catchCause(causeToResponse),
              )
        const response = normalize(
          (handled.status === 404 && cell.route === "unmatched"
            ? methodNotAllowed(routes, request.method, request.url)
            : undefined) ?? handled,
        )
        yield* recordRequest(request.method, cell.route, response.status, (performance.now() - started) / 1000)
        return HttpServerResponse.setHeader(response, "x-request-id", requestId)
      }),
    { global: true },
  )

/** Route middleware: records the matched route template for the metrics of the global middleware. */
export const routeLabel = HttpRouter.middleware((httpEffect) =>
  Effect.gen(function* () {
    const cell = yield* RouteCell
    const context = yield* HttpRouter.RouteContext
    cell.route = context.route.path
    return yield* httpEffect
  }),
).layer

/** `/healthz` (the process is alive), `/readyz` (each dependency answers; 503 names the failing ones), `/metrics`. */
export const systemRoutes = Layer.mergeAll(
  HttpRouter.add("GET", "/healthz", Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "ok" }))),
  // The registry is taken when the routes are built, not per request: a Lambda's web handler runs requests with the
  // router's outputs only, not with what the app's layers were provided.
  Layer.unwrap(
    Effect.map(Effect.service(Health), (health) =>
      HttpRouter.add(
        "GET",
        "/readyz",
        Effect.gen(function* () {
          const readiness = yield* health.readiness
          if (readiness.ok) {
            // Ready, but serving without a dependency it can do without (Redis): say so, still 200.
            const degraded = Object.values(readiness.checks).includes("degraded")
            return HttpServerResponse.jsonUnsafe({ status: degraded ? "degraded" : "ok", checks: readiness.checks })
          }
          const failing = Object.entries(readiness.checks)
            .filter(([, r]) => r !== "ok")
            .map(([name]) => name)
          return Problem.response(503, `not ready: ${failing.join(", ")}`, { checks: readiness.checks })
        }),
      ),
    ),
  ),
  PrometheusMetrics.layerHttp({ path: "/metrics" }),
).pipe(Layer.provide(routeLabel))

/** Parse options every HttpApi contract uses: report all problems, refuse unknown body fields. */
export const strictParsing = { errors: "all", onExcessProperty: "error" } as const

/** Parse options for headers: all problems, but transport headers are not "unknown fields". */
export const headerParsing = { errors: "all" } as const

/** Turns request-decoding failures of an HttpApi into 400 validation_failed problems listing each field. */
export const validationProblems = HttpApiMiddleware.layerSchemaErrorTransform(KernelProblems, (error) => {
  if (error.kind === "Body" || error.kind === "ResponseHeaders") return Effect.die(error)
  const slot = error.kind === "Payload" ? "" : error.kind.toLowerCase()
  return Effect.fail(Problem.validationFailed(error.cause.issue, slot))
})

/**
 * A handler that may take a request before the router: true when it answers it itself, false to pass it on. The
 * gateway's proxy is one: it streams bodies both ways and does the middleware's work (request id, client address,
 * problems, metrics) on its own, without a router, a server span or a response object per request.
 */
export type Front = (request: IncomingMessage, response: ServerResponse) => boolean

// Requests Node refuses before any handler (headers too large, malformed HTTP, a request timeout) are answered as
// every other error, problem+json with a stable code, instead of Node's bare status line with an empty body.
const answerClientError = (error: Error & { code?: string }, socket: Duplex) => {
  if (!socket.writable || error.code === "ECONNRESET") {
    socket.destroy()
    return
  }
  const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400
  const { code, title } = Problem.forStatus(status)
  const detail =
    status === 431
      ? "the request's header fields are too large"
      : status === 408
        ? "the request took too long to arrive"
        : "the request is not valid HTTP"
  const body = JSON.stringify({ type: `urn:problem:${code}`, title, status, detail, code })
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/problem+json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
}

// Node's server.close() closes the connections idle at that moment only; a keep-alive socket whose request is still
// in flight would linger after its response until the client's idle timeout. Sweep idle sockets until closed.
const drainingServer = (front: Front | undefined, taken: Set<ServerResponse>) => {
  // No upgrades with a front: an `Upgrade: h2c` or `websocket` request is an ordinary request (the front proxies it
  // with the hop-by-hop header dropped) instead of reaching the router's upgrade handler.
  const server = createServer({
    requestTimeout: 30_000,
    ...(front === undefined ? {} : { shouldUpgradeCallback: () => false }),
  })
  server.on("clientError", answerClientError)
  const close = server.close.bind(server)
  server.close = (callback) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 50)
    return close((error) => {
      clearInterval(sweep)
      callback?.(error)
    })
  }
  if (front !== undefined) {
    // Requests (and `Expect: 100-continue` ones: the front sends the 100 when it wants the body) reach the front
    // first; the router's listeners get the rest. What the front takes is tracked until its response closes.
    const emit = server.emit.bind(server) as (event: string, ...args: Array<unknown>) => boolean
    server.emit = ((event: string, ...args: Array<unknown>) => {
      if (event === "request" || event === "checkContinue") {
        const [request, response] = args as [IncomingMessage, ServerResponse]
        if (front(request, response)) {
          taken.add(response)
          response.once("close", () => taken.delete(response))
          return true
        }
      }
      return emit(event, ...args)
    }) as typeof server.emit
  }
  return server
}

// Shutdown with a front: stop accepting, give what the front has in flight the grace period, then answer 503 to those
// still waiting for an answer and cut the streams still flowing (the front stops their work when they close).
const drainFront = (server: Server, taken: Set<ServerResponse>, graceMs: number) =>
  Effect.gen(function* () {
    server.close()
    yield* Effect.callback<void>((resume) => {
      const check = setInterval(() => taken.size === 0 && resume(Effect.void), 20)
      if (taken.size === 0) resume(Effect.void)
      return Effect.sync(() => clearInterval(check))
    }).pipe(Effect.timeoutOrElse({ duration: Duration.millis(graceMs), orElse: () => Effect.void }))
    for (const response of taken) {
      if (response.headersSent) response.destroy()
      else {
        const answer = Problem.response(503, "the service is shutting down, retry", { retryAfter: 1 })
        const body = answer.body as { readonly body: Uint8Array; readonly contentType: string }
        response.writeHead(503, { "content-type": body.contentType, "retry-after": "1", connection: "close" })
        response.end(body.body)
      }
    }
  })

/** Routes outside a function's contract that stay unguarded (development tools such as the dev mailbox). */
export interface Unguarded<RU = never> {
  readonly unguarded?: Layer.Layer<never, never, RU>
}

/**
 * A function's routes, each enforced by the function itself as its manifest declares it (zero trust, see
 * `RouteGuard`): what the container and Lambda entries serve. Needs `Verifier`, and `Permissions` for permission routes.
 */
export const guarded = <A, E, R>(routes: Layer.Layer<A, E, R>, declared: ReadonlyArray<RouteSpec>) =>
  routes.pipe(Layer.provide(RouteGuard.layer(declared)))

/** A function's routes with the system routes and the request middleware: the app any transport serves. */
export const app = <A, E, R, RU = never>(
  routes: Layer.Layer<A, E, R>,
  options: Omit<ServerOptions, "port" | "shutdownTimeoutMs"> & Unguarded<RU>,
) =>
  Layer.mergeAll(
    routes.pipe(Layer.provide(routeLabel)),
    options.unguarded ?? Layer.empty,
    systemRoutes,
    requestMiddleware(
      options.maxBodyBytes ?? 1024 * 1024,
      options.api ? knownRoutes(options.api) : [],
      trustedProxies(options.trustedProxies ?? []),
    ),
  )

/**
 * Serves an app's routes plus the system routes over Node's HTTP server; drains in-flight requests on shutdown.
 * `front`, when given, is built first and sees every request before the router (see `Front`).
 */
export const serve = <A, E, R, RF = never, RU = never>(
  routes: Layer.Layer<A, E, R>,
  options: ServerOptions & Unguarded<RU> & { readonly front?: Effect.Effect<Front, never, RF> },
) =>
  Layer.unwrap(
    Effect.map(options.front ?? Effect.succeed(undefined), (front) => {
      const graceMs = options.shutdownTimeoutMs ?? 10_000
      const taken = new Set<ServerResponse>()
      const server = drainingServer(front, taken)
      const served = HttpRouter.serve(app(routes, options), {
        disableLogger: true,
        disableListenLog: true,
        // Any server middleware turns on Effect's HTTP tracer: a server span per request, continuing `traceparent`.
        middleware: identity,
      }).pipe(
        Layer.provideMerge(
          NodeHttpServer.layer(() => server, { port: options.port, gracefulShutdownTimeout: Duration.millis(graceMs) }),
        ),
      )
      if (front === undefined) return served
      // Built after the server, so released before it: the front's requests are drained first.
      return Layer.effectDiscard(Effect.addFinalizer(() => drainFront(server, taken, graceMs))).pipe(
        Layer.provideMerge(served),
      )
    }),
  )
