import { type Effect, Layer } from "effect"
import type { HttpRouter, HttpServer } from "effect/http"
import { routesOf } from "./access/Route.ts"
import type { ConfigInvalid } from "./Config.ts"
import * as GrpcDeferred from "./GrpcDeferred.ts"
import type { ModuleDeclaration, RouteSpec } from "./Module.ts"
import * as Server from "./Server.ts"

/** Where a function runs: a long-lived container (servers and background work) or a Lambda invocation (HTTP only). */
export type Runtime = "container" | "lambda"

/**
 * A function, as its entries run it: the one value its `App.ts` exports as `app`. The container entry (`main.ts`,
 * `Main.run(app)`), the Lambda entry (`lambda.ts`, `Lambda.handler(app)`) and the tests (`harness`) all start it from
 * here, so a function is wired once.
 */
export interface FunctionApp<C = any> {
  readonly manifest: Pick<ModuleDeclaration, "name">
  /** Its validated configuration (`Config.load`): invalid configuration stops the start with every problem. */
  readonly config: Effect.Effect<C, ConfigInvalid>
  /** Everything a container runs, from the configuration. */
  readonly container: (config: C) => Layer.Layer<never, unknown, never>
  /** What a Lambda invocation serves (the HTTP app alone), when the function runs on Lambda. */
  readonly lambda?: (config: C) => Layer.Layer<unknown, unknown, never>
}

/** A function defined with `define`: also what tests start it with. */
export interface DefinedApp<C = any> extends FunctionApp<C> {
  /** Its routes with their declarations, from its contract: what its guard enforces. */
  readonly routes: ReadonlyArray<RouteSpec>
  /**
   * Its container as a layer that also gives its services (tests read them), with `standIns` replacing any of the
   * services it gives (tests stand in for other functions: a local permission check instead of authz's). Stand-ins may
   * use the app's own services.
   */
  readonly layer: (config: C, standIns?: Layer.Layer<any, any, any>) => Layer.Layer<unknown, unknown, never>
}

/** A function with an HTTP contract: the parts its entries and tests assemble. */
export interface Definition<C extends ServersConfig, R, S, RC, RU> {
  readonly manifest: Pick<ModuleDeclaration, "name">
  /** Its public contract (`Api.ts`): each endpoint declares who may call it; the guard enforces that. */
  readonly api: { readonly identifier: string; readonly groups: object }
  readonly config: Effect.Effect<C, ConfigInvalid>
  /** Its HTTP handlers (`Http.ts`). */
  readonly http: Layer.Layer<never, unknown, R>
  /** Its gRPC services module (`() => import("./Grpc.ts")`), loaded once HTTP listens; none: no gRPC port. */
  readonly grpc?: () => Promise<GrpcDeferred.GrpcModule<any>>
  /** Background work of a container (event consumers, relays); Lambda leaves it out (it would freeze between calls). */
  readonly background?: (config: C) => Layer.Layer<never, unknown, RC>
  /** Development routes outside its contract, served unguarded (the dev mailbox). */
  readonly unguarded?: (config: C) => Layer.Layer<never, never, RU>
  /**
   * What its handlers, gRPC services and background work run on (domain, access, data, kernel), for a runtime: a
   * container follows events, a Lambda invocation reads stores.
   */
  readonly services: (config: C, runtime: Runtime) => Layer.Layer<S, unknown, never>
}

/** What the HTTP server gives every handler, in a container and on Lambda alike (`HttpServer.layerServices`). */
type ServerGiven = Layer.Success<typeof HttpServer.layerServices> | HttpRouter.HttpRouter

/** The services a definition's parts need that `services` does not give: `never` when it is complete. */
type Missing<R, S, RC, RU> = Exclude<R | RC | RU, S | ServerGiven>

/**
 * A function's app from its parts. A container serves HTTP (every route guarded as its contract declares) and, with
 * `grpc`, gRPC, plus its background work; Lambda serves the same guarded HTTP app. A part that needs a service
 * `services` does not give is a type error naming it.
 */
export const define = <C extends ServersConfig, R, S, RC = never, RU = never>(
  definition: Definition<C, R, S, RC, RU> &
    ([Missing<R, S, RC, RU>] extends [never] ? unknown : { readonly missing: Missing<R, S, RC, RU> }),
): DefinedApp<C> & { readonly definition: Definition<C, R, S, RC, RU> } => {
  const { api, http, grpc, background, unguarded, services } = definition
  const declared = routesOf(api)
  const layer = (config: C, standIns?: Layer.Layer<any, any, any>) => {
    const served = servers(http, {
      api,
      config,
      declared,
      grpc,
      ...(unguarded ? { unguarded: unguarded(config) } : {}),
    })
    const given = services(config, "container")
    const provided = standIns === undefined ? given : Layer.merge(given, standIns.pipe(Layer.provide(given)))
    return Layer.mergeAll(served, background?.(config) ?? Layer.empty).pipe(
      Layer.provideMerge(provided),
    ) as Layer.Layer<unknown, unknown, never>
  }
  return {
    manifest: definition.manifest,
    config: definition.config,
    definition,
    routes: declared,
    layer,
    container: (config) => layer(config) as Layer.Layer<never, unknown, never>,
    lambda: (config) =>
      Server.app(Server.guarded(http, declared), { api, maxBodyBytes: config.maxBodyBytes }).pipe(
        Layer.provide(services(config, "lambda")),
      ) as Layer.Layer<unknown, unknown, never>,
  }
}

/**
 * The part of `services` that differs by runtime (a container follows events on the bus; a Lambda invocation asks the
 * stores). Typed as giving what either gives: only a container runs the background work that needs the bus.
 */
export const byRuntime = <AC, EC, RC, AL, EL, RL>(
  runtime: Runtime,
  layers: { readonly container: Layer.Layer<AC, EC, RC>; readonly lambda: Layer.Layer<AL, EL, RL> },
) => (runtime === "container" ? layers.container : layers.lambda) as Layer.Layer<AC | AL, EC | EL, RC | RL>

/** What the servers and the Lambda app read from a function's validated config (`Config.base`). */
export interface ServersConfig {
  readonly httpPort: number
  /** Read only when the function serves gRPC. */
  readonly grpcPort?: number
  readonly maxBodyBytes: number
  readonly shutdownTimeoutMs: number
  readonly trustedProxies: ReadonlyArray<string>
}

/** What `servers` needs besides the routes. */
interface ServersOptions {
  readonly api: Server.ApiLike
  readonly config: ServersConfig
  /** Its contract's routes with their declarations: each is enforced as declared (`Server.guarded`). */
  readonly declared: ReadonlyArray<RouteSpec>
  readonly unguarded?: Layer.Layer<never, never, unknown>
  /** Its Grpc.ts module; none: no gRPC port, nothing of grpc-js loaded, nothing gRPC needs (a service identity). */
  readonly grpc?: (() => Promise<GrpcDeferred.GrpcModule<any>>) | undefined
}

/**
 * A container's servers, the same in every function: HTTP with the kernel's middleware on `HTTP_PORT`, every route
 * enforced as declared, then, when the function has a Grpc.ts module, gRPC on `GRPC_PORT` with its services, imported
 * only once HTTP listens. A function with gRPC must have a gRPC port (no random port by omission).
 */
const servers = (routes: Layer.Layer<never, unknown, unknown>, options: ServersOptions) => {
  const { config } = options
  const served = Server.serve(Server.guarded(routes, options.declared), {
    api: options.api,
    ...(options.unguarded ? { unguarded: options.unguarded } : {}),
    port: config.httpPort,
    maxBodyBytes: config.maxBodyBytes,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    trustedProxies: config.trustedProxies,
  }) as Layer.Layer<never, unknown, unknown>
  if (options.grpc === undefined) return served
  if (config.grpcPort === undefined) throw new Error("a function with gRPC needs GRPC_PORT in its config (Config.base)")
  const grpc = GrpcDeferred.afterHttp(options.grpc, {
    port: config.grpcPort,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  })
  return Layer.mergeAll(served, grpc.pipe(Layer.provide(served)) as Layer.Layer<never, unknown, unknown>)
}
