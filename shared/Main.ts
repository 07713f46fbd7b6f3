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
  readonly grpcPort: number
  readonly maxBodyBytes: number
  readonly shutdownTimeoutMs: number
  readonly trustedProxies: ReadonlyArray<string>
}

/**
 * A container's servers, the same in every function: HTTP with the kernel's middleware on `HTTP_PORT`, then gRPC on
 * `GRPC_PORT` with the services of the function's Grpc.ts module, imported only once HTTP listens.
 */
export const servers = <A, E, R, G, RU = never>(
  routes: Layer.Layer<A, E, R>,
  options: {
    readonly api: Server.ApiLike
    readonly grpc: () => Promise<GrpcDeferred.GrpcModule<G>>
    readonly config: ServersConfig
    /** The manifest's routes: each route is enforced as declared there (`Server.guarded`). */
    readonly declared: ReadonlyArray<RouteSpec>
  } & Server.Unguarded<RU>,
) => {
  const { config } = options
  const http = Server.serve(Server.guarded(routes, options.declared), {
    api: options.api,
    ...(options.unguarded ? { unguarded: options.unguarded } : {}),
    port: config.httpPort,
    maxBodyBytes: config.maxBodyBytes,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    trustedProxies: config.trustedProxies,
  })
  const grpc = GrpcDeferred.afterHttp(options.grpc, {
    port: config.grpcPort,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  })
  return Layer.mergeAll(http, grpc.pipe(Layer.provide(http)))
}
