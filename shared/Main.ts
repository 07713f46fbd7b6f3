import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import { ConfigInvalid, loadDotEnv } from "./Config.ts"
import * as GrpcDeferred from "./GrpcDeferred.ts"
import type { RouteSpec } from "./Module.ts"
import * as Server from "./Server.ts"

/**
 * Runs a function's composition root until SIGTERM/SIGINT, then shuts down gracefully (stop accepting, drain,
 * close pools) and exits 0. Invalid configuration prints every problem and exits 1 before anything starts.
 * With PLATFORM_WARMUP=1 it starts nothing: the modules are loaded (filling NODE_COMPILE_CACHE) and the process ends.
 */
export const run = <E, R extends never>(service: string, app: Layer.Layer<never, E, R>): void => {
  if (process.env.PLATFORM_WARMUP === "1") return
  loadDotEnv()
  Layer.launch(app).pipe(
    Effect.catchIf(
      (error): error is ConfigInvalid & E => error instanceof ConfigInvalid,
      (error) =>
        Effect.sync(() => {
          process.stderr.write(`${service}: ${error.message}\n`)
          process.exit(1)
        }),
    ),
    NodeRuntime.runMain({ disableErrorReporting: false, teardown }),
  )
}

// SIGTERM/SIGINT interrupt the main fiber: a run ended only by that interruption is a clean shutdown (0, not 130).
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

/** What `servers` reads from a function's validated config (`Config.base`). */
export interface ServersConfig {
  readonly httpPort: number
  /** Read only when the function serves gRPC. */
  readonly grpcPort?: number
  readonly maxBodyBytes: number
  readonly shutdownTimeoutMs: number
  readonly trustedProxies: ReadonlyArray<string>
}

/** What `servers` needs besides the routes. */
export type ServersOptions<RU> = {
  readonly api: Server.ApiLike
  readonly config: ServersConfig
  /** The manifest's routes: each route is enforced as declared there (`Server.guarded`). */
  readonly declared: ReadonlyArray<RouteSpec>
} & Server.Unguarded<RU>

/** What a function with gRPC adds: its Grpc.ts module, and a gRPC port it must have (no random port by omission). */
type WithGrpc<G> = {
  readonly grpc: () => Promise<GrpcDeferred.GrpcModule<G>>
  readonly config: { readonly grpcPort: number }
}

/** A function's HTTP server with the kernel's middleware on `HTTP_PORT`, every route enforced as declared. */
const http = <A, E, R, RU>(routes: Layer.Layer<A, E, R>, options: ServersOptions<RU>) =>
  Server.serve(Server.guarded(routes, options.declared), {
    api: options.api,
    ...(options.unguarded ? { unguarded: options.unguarded } : {}),
    port: options.config.httpPort,
    maxBodyBytes: options.config.maxBodyBytes,
    shutdownTimeoutMs: options.config.shutdownTimeoutMs,
    trustedProxies: options.config.trustedProxies,
  })

/** The HTTP server, then the gRPC server on `GRPC_PORT` with the services of the function's Grpc.ts module. */
const httpAndGrpc = <A, E, R, G, RU>(routes: Layer.Layer<A, E, R>, options: ServersOptions<RU> & WithGrpc<G>) => {
  const served = http(routes, options)
  const grpc = GrpcDeferred.afterHttp(options.grpc, {
    port: options.config.grpcPort,
    shutdownTimeoutMs: options.config.shutdownTimeoutMs,
  })
  return Layer.mergeAll(served, grpc.pipe(Layer.provide(served)))
}

/**
 * A container's servers, the same in every function: HTTP with the kernel's middleware on `HTTP_PORT`, then, when the
 * function has a Grpc.ts module (`grpc`), gRPC on `GRPC_PORT` with its services, imported only once HTTP listens. A
 * function without gRPC passes no `grpc`: nothing of grpc-js is loaded, no gRPC port is opened, and its layer needs
 * nothing gRPC needs (a service identity for callers).
 */
export function servers<A, E, R, G, RU = never>(
  routes: Layer.Layer<A, E, R>,
  options: ServersOptions<RU> & WithGrpc<G>,
): ReturnType<typeof httpAndGrpc<A, E, R, G, RU>>
export function servers<A, E, R, RU = never>(
  routes: Layer.Layer<A, E, R>,
  options: ServersOptions<RU> & { readonly grpc?: undefined },
): ReturnType<typeof http<A, E, R, RU>>
export function servers(
  routes: Layer.Layer<any, any, any>,
  options: ServersOptions<any> & { readonly grpc?: () => Promise<GrpcDeferred.GrpcModule<any>> },
) {
  if (options.grpc === undefined) return http(routes, options)
  const grpcPort = options.config.grpcPort
  if (grpcPort === undefined) throw new Error("a function with gRPC needs GRPC_PORT in its config (Config.base)")
  return httpAndGrpc(routes, { ...options, grpc: options.grpc, config: { ...options.config, grpcPort } })
}
