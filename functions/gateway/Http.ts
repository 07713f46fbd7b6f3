import { randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import type { Socket } from "node:net"
import { Effect, Layer, Option } from "effect"
import { type Headers, HttpRouter, HttpServerResponse, HttpTraceContext } from "effect/http"
import type { Permissions } from "../../shared/access/Permissions.ts"
import { clientAddress } from "../../shared/ClientAddress.ts"
import type { Front } from "../../shared/Drain.ts"
import { ErrorBus } from "../../shared/ErrorBus.ts"
import { recordRequest, requestRecorder } from "../../shared/HttpMetrics.ts"
import * as Problem from "../../shared/Problem.ts"
import { ClientIp, isSaneId, RequestId } from "../../shared/RequestContext.ts"
import * as Server from "../../shared/Server.ts"
import { trustedProxies } from "../../shared/TrustedProxies.ts"
import * as AccountPages from "./AccountPages.ts"
import { admission } from "./Admission.ts"
import * as Cors from "./Cors.ts"
import type { ConsoleOptions } from "./console/Console.ts"
import * as Console from "./console/Console.ts"
import * as DevListings from "./DevListings.ts"
import * as Docs from "./Docs.ts"
import type { EdgeAuth } from "./EdgeAuth.ts"
import { forwarding } from "./Forwarding.ts"
import * as GraphQL from "./graphql/GraphQL.ts"
import { GRAPHQL_PATH } from "./graphql/Path.ts"
import { type Arrival, type HotRoute, makeHotPath } from "./HotPath.ts"
import { OpenApiDocument } from "./OpenApi.ts"
import type { ProxyOptions } from "./ProxyOptions.ts"
import type { RateLimits } from "./RateLimits.ts"
import { routeSettings } from "./RouteSettings.ts"
import { isOwnPath } from "./RouteTable.ts"
import { send } from "./SocketAnswers.ts"
import { Upstreams } from "./Upstreams.ts"

/**
 * The proxy, in front of the gateway's router: every path that is not the gateway's own is resolved against the
 * route table (404, 405 with `Allow`), rate limited per address, authenticated and authorised at the edge when the
 * route needs it, then forwarded with its body streamed; the answer streams back. Every error the gateway produces
 * is problem+json. It does the kernel middleware's work itself (request id, client address, declared-size 413,
 * request metrics labelled with the route template, one server span continuing `traceparent`) without a router or a
 * response object per request: the gateway's whole cost is on this path. A request whose checks memory answers
 * (the bulk: a known token, a cached permission, default limits) takes the hot path (`HotPath.ts`: the same steps as
 * plain callbacks, no fiber); the rest, and everything rare, this Effect path.
 */
export const front = (options: ProxyOptions): Effect.Effect<Front, never, ProxyServices | OpenApiDocument> =>
  Effect.gen(function* () {
    const trusted = trustedProxies(options.trustedProxies)
    const errors = yield* ErrorBus
    const admit = yield* admission
    const forward = yield* forwarding(trusted)
    const graphql = yield* GraphQL.front(options)
    const context = yield* Effect.context<ProxyServices>()
    const settingsFor = routeSettings(options)

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
        if (path === GRAPHQL_PATH) {
          cell.route = GRAPHQL_PATH
          return yield* graphql(request, requestId, clientIp)
        }
        const headers = request.headers as Record<string, string | undefined>
        const resolved = options.table.resolve(method, path)
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
        // The route's own limit (an upload's) or the default, before any work: the body is not read.
        if (Number(headers["content-length"] ?? 0) > own.maxBodyBytes) {
          return Problem.response(413, `request body is larger than ${own.maxBodyBytes} bytes`)
        }
        const admitted = yield* admit(route, own, headers.authorization, clientIp)
        if (admitted._tag === "Refused") return admitted.answer
        return yield* forward({
          request,
          response,
          method,
          path,
          requestId,
          route,
          timeoutMs: own.timeoutMs,
          maxBodyBytes: own.maxBodyBytes,
          actor: admitted.actor,
          quotas: admitted.quotas,
        })
      })

    const handle = (arrival: Arrival) => {
      const { request, response, path, requestId, clientIp, started, method } = arrival
      const cell: RouteCell = { route: "unmatched" }
      const parent = HttpTraceContext.fromHeaders(request.headers as unknown as Headers.Headers)
      return decide(request, response, path, clientIp, requestId, cell).pipe(
        Effect.map((answer) => Cors.decorate(answer, options.cors, request.headers.origin)),
        // A defect of the gateway's own (an upstream's 5xx is that function's to report): logged and reported.
        Effect.catchCause((cause) =>
          Effect.logError("unhandled failure", cause).pipe(
            Effect.andThen(errors.capture({ cause, origin: "http", route: cell.route })),
            Effect.as(Problem.response(500)),
          ),
        ),
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

    // The matched route, its settings and its metrics per method and path, for the hot path: most requests repeat a few paths.
    // Matches only (a flood of unknown paths does not push them out); bounded, the oldest first out (paths with ids
    // are many).
    const hotRoutes = new Map<string, HotRoute>()
    const routeOf = (method: string, path: string): HotRoute | undefined => {
      const key = `${method} ${path}`
      const known = hotRoutes.get(key)
      if (known !== undefined) return known
      const resolved = options.table.resolve(method, path)
      if (resolved._tag !== "Match") return undefined
      const hot = {
        route: resolved.route,
        own: settingsFor(resolved.route),
        record: requestRecorder(method, resolved.route.template),
      }
      if (hotRoutes.size >= ROUTE_CACHE_ENTRIES) hotRoutes.delete(hotRoutes.keys().next().value!)
      hotRoutes.set(key, hot)
      return hot
    }
    const hotPath = makeHotPath({
      services: context,
      cors: options.cors,
      routeOf,
    })
    // Whether a connection's peer is a trusted proxy, asked once per connection (a keep-alive one carries many
    // requests).
    const trustedPeers = new WeakMap<Socket, boolean>()
    const isTrusted = (socket: Socket) => {
      let found = trustedPeers.get(socket)
      if (found === undefined) {
        const peer = socket.remoteAddress
        found = peer !== undefined && trusted(peer)
        trustedPeers.set(socket, found)
      }
      return found
    }

    return (request, response) => {
      const url = request.url ?? "/"
      const q = url.indexOf("?")
      const path = q === -1 ? url : url.slice(0, q)
      // GraphQL is the gateway's own path but answered here, with the proxy's request context (GraphQL.ts says why).
      if (path !== GRAPHQL_PATH && isOwnPath(path)) return false
      const started = performance.now()
      const header = request.headers["x-request-id"]
      const requestId = typeof header === "string" && isSaneId(header) ? header : randomUUID()
      const peer = request.socket.remoteAddress ?? ""
      const forwardedFor = request.headers["x-forwarded-for"]
      const trustedPeer = isTrusted(request.socket)
      const clientIp =
        forwardedFor === undefined || !trustedPeer
          ? peer
          : clientAddress(peer, Array.isArray(forwardedFor) ? undefined : forwardedFor, trusted)
      const arrival: Arrival = {
        request,
        response,
        method: request.method ?? "GET",
        path,
        requestId,
        clientIp,
        trustedPeer,
        started,
      }
      if (hotPath(arrival)) return true
      const fiber = Effect.runForkWith(context)(handle(arrival))
      // The response closed before the work ended (the client went away, or shutdown answered it): stop the work, and
      // the upstream request with it. A fiber that already ended is not affected.
      response.once("close", () => fiber.interruptUnsafe())
      return true
    }
  })

// How many method-and-path pairs the hot path's route cache holds.
const ROUTE_CACHE_ENTRIES = 10_000

interface RouteCell {
  route: string
}

/** What the proxy needs from the gateway's layers. */
export type ProxyServices = Upstreams | EdgeAuth | Permissions | RateLimits

/**
 * The gateway's own routes: `/openapi.json`, `/docs`, `/readyz/upstreams`, the mails' `/verify-email` and
 * `/reset-password` pages (the proxy takes every other path, and `/graphql`).
 */
export const HttpLive = (console: ConsoleOptions) =>
  Layer.mergeAll(
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
    Console.routes(console),
  )

/**
 * The gateway's HTTP server: the proxy in front, its own routes and the system routes behind it; the HTTP client is
 * loaded once it listens.
 */
export const serve = (
  options: ProxyOptions,
  server: { readonly port: number; readonly shutdownTimeoutMs: number; readonly console?: ConsoleOptions },
) =>
  Layer.effectDiscard(Effect.flatMap(Upstreams, (upstreams) => upstreams.warm)).pipe(
    Layer.provideMerge(
      Server.serve(
        options.development
          ? Layer.mergeAll(HttpLive(server.console ?? { connectOrigins: [] }), DevListings.errors, DevListings.mail)
          : HttpLive(server.console ?? { connectOrigins: [] }),
        {
          port: server.port,
          maxBodyBytes: options.maxBodyBytes,
          shutdownTimeoutMs: server.shutdownTimeoutMs,
          trustedProxies: options.trustedProxies,
          front: front(options),
        },
      ),
    ),
  )
