import type { ServerResponse } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Duration, Effect, identity, Layer } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiMiddleware } from "effect/http-api"
import * as RouteGuard from "./access/RouteGuard.ts"
import { drainFront, drainingServer, type Front } from "./Drain.ts"
import { routeLabel } from "./HttpMetrics.ts"
import { type ApiLike, knownRoutes } from "./KnownRoutes.ts"
import type { RouteSpec } from "./Module.ts"
import { KernelProblems } from "./OpenApiContract.ts"
import * as Problem from "./Problem.ts"
import { requestMiddleware } from "./RequestMiddleware.ts"
import { systemRoutes } from "./SystemRoutes.ts"
import { trustedProxies } from "./TrustedProxies.ts"

export type { ApiLike } from "./KnownRoutes.ts"

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
