import { type Effect, Layer, type Redacted } from "effect"
import type { HttpRouter, HttpServer } from "effect/http"
import { routesOf } from "./access/Route.ts"
import type { ConfigInvalid } from "./Config.ts"
import * as ErrorBus from "./ErrorBus.ts"
import * as GrpcDeferred from "./GrpcDeferred.ts"
import * as Jobs from "./Jobs.ts"
import { retentionMigrations } from "./KernelMigrations.ts"
import type { ModuleDeclaration, RouteSpec } from "./Module.ts"
import * as Retention from "./Retention.ts"
import * as Server from "./Server.ts"
import { announce, type RegistrySettings } from "./ServiceRegistry.ts"

/** Where a function runs: a long-lived container (servers and background work) or a Lambda invocation (HTTP only). */
export type Runtime = "container" | "lambda"

/**
 * A function, as its entries run it: the one value its `App.ts` exports as `app`. The container entry (`main.ts`,
 * `Main.run(app)`), the Lambda entry (`lambda.ts`, `Lambda.handler(app)`) and the tests (`harness`) all start it from
 * here, so a function is wired once.
 */
export interface FunctionApp<C = any> {
  readonly manifest: Pick<ModuleDeclaration, "name" | "version">
  /** Its validated configuration (`Config.load`): invalid configuration stops the start with every problem. */
  readonly config: Effect.Effect<C, ConfigInvalid>
  /** Everything a container runs, from the configuration. */
  readonly container: (config: C) => Layer.Layer<never, unknown, never>
  /** Its durable jobs (the registry lists them). */
  readonly jobs?: Jobs.JobSpecs<any>
  /** What a Lambda invocation serves (the HTTP app alone), when the function runs on Lambda. */
  readonly lambda?: (config: C) => Layer.Layer<unknown, unknown, never>
}

/** A function defined with `define`: also what tests start it with. */
export interface DefinedApp<C = any> extends FunctionApp<C> {
  /** Its routes with their declarations, from its contract: what its guard enforces. */
  readonly routes: ReadonlyArray<RouteSpec>
  /** Its durable jobs: those it declares and, with the kernel's tables, the kernel's `retention` job. */
  readonly jobs: Jobs.JobSpecs<any>
  /**
   * Its container as a layer that also gives its services (tests read them), with `standIns` replacing any of the
   * services it gives (tests stand in for other functions: a local permission check instead of authz's). Stand-ins may
   * use the app's own services.
   */
  readonly layer: (config: C, standIns?: Layer.Layer<any, any, any>) => Layer.Layer<unknown, unknown, never>
}

/** A function with an HTTP contract: the parts its entries and tests assemble. */
export interface Definition<C extends ServersConfig, R, S, RC, RU, RJ = never> {
  /** Its manifest (`module.ts`); with the kernel's migrations it has the kernel's tables, and their retention job. */
  readonly manifest: Pick<ModuleDeclaration, "name" | "version"> & Partial<Pick<ModuleDeclaration, "migrations">>
  /** Its public contract (`Api.ts`): each endpoint declares who may call it; the guard enforces that. */
  readonly api: { readonly identifier: string; readonly groups: object }
  readonly config: Effect.Effect<C, ConfigInvalid>
  /** Its HTTP handlers (`Http.ts`). */
  readonly http: Layer.Layer<never, unknown, R>
  /** Its gRPC services module (`() => import("./Grpc.ts")`), loaded once HTTP listens; none: no gRPC port. */
  readonly grpc?: () => Promise<GrpcDeferred.GrpcModule<any>>
  /** Background work of a container (event consumers, relays); Lambda leaves it out (it would freeze between calls). */
  readonly background?: (config: C) => Layer.Layer<never, unknown, RC>
  /**
   * Its durable jobs by name (`Jobs.cron`, `Jobs.onDemand`, each with its handler), kept in `<DB_SCHEMA>_jobs`: a
   * container runs them; every runtime may enqueue them (`Jobs.Jobs`). Needs the database keys (`Config.database`).
   */
  readonly jobs?: Jobs.JobSpecs<RJ>
  /**
   * What its own tables keep and for how long (`Retention.Rule`s, from its config). A function with the kernel's tables
   * runs the `retention` job (every 10 minutes) over the kernel's rules (outbox, inbox, mail) and these.
   */
  readonly retention?: (config: C) => ReadonlyArray<Retention.Rule>
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
type Missing<R, S, RC, RU, RJ> = Exclude<R | RC | RU | RJ, S | ServerGiven | Jobs.Jobs | Retention.Rules>

/**
 * A function's app from its parts. A container serves HTTP (every route guarded as its contract declares) and, with
 * `grpc`, gRPC, plus its background work; Lambda serves the same guarded HTTP app. A part that needs a service
 * `services` does not give is a type error naming it.
 */
export const define = <C extends ServersConfig, R, S, RC = never, RU = never, RJ = never>(
  definition: Definition<C, R, S, RC, RU, RJ> &
    ([Missing<R, S, RC, RU, RJ>] extends [never] ? unknown : { readonly missing: Missing<R, S, RC, RU, RJ> }),
): DefinedApp<C> & { readonly definition: Definition<C, R, S, RC, RU, RJ> } => {
  const { api, http, grpc, background, unguarded, services } = definition
  // A function with the kernel's tables prunes them (and what its `retention` names) with the kernel's job.
  const prunes = definition.manifest.migrations?.some((m) => m.id === retentionMigrations[0]!.id) ?? false
  const jobSpecs: Jobs.JobSpecs<any> = { ...(prunes ? Retention.jobs : {}), ...definition.jobs }
  const retention = (config: C) => {
    if (!prunes) return Layer.empty
    const kernel = config as unknown as Retention.KernelRetentionConfig & { readonly retentionBatchSize?: number }
    if (kernel.retentionBatchSize === undefined) {
      throw new Error(
        `${definition.manifest.name} has the kernel's tables: its config needs the database keys (Config.database)`,
      )
    }
    const rules = [...Retention.kernelRules(kernel), ...(definition.retention?.(config) ?? [])]
    return Retention.layer(rules, kernel.retentionBatchSize)
  }
  // Its jobs on its own database; on Lambda only enqueued (an invocation is frozen between calls).
  const jobs = (config: C, runtime: Runtime) => {
    if (Object.keys(jobSpecs).length === 0) return Jobs.none(definition.manifest.name)
    const db = config as Partial<{ readonly databaseUrl: Redacted.Redacted<string>; readonly dbSchema: string }>
    if (db.databaseUrl === undefined || db.dbSchema === undefined) {
      throw new Error(`${definition.manifest.name} declares jobs: its config needs the database keys (Config.database)`)
    }
    return Jobs.layer({
      service: definition.manifest.name,
      url: db.databaseUrl,
      schema: db.dbSchema,
      jobs: jobSpecs,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      work: runtime === "container",
    })
  }
  // What the parts run on: the function's services and its jobs (whose handlers use those services).
  const given = (config: C, runtime: Runtime) => {
    const services_ = Layer.merge(services(config, runtime), retention(config))
    return jobs(config, runtime).pipe(Layer.provideMerge(services_)) as unknown as ReturnType<typeof services>
  }
  const routes = routesOf(api)
  // Outside production every function lists its recent error reports (`GET /_dev/errors`, merged by the gateway).
  const development = (config: C) =>
    config.env === "production"
      ? unguarded?.(config)
      : Layer.merge(unguarded?.(config) ?? Layer.empty, ErrorBus.devRoute as Layer.Layer<never>)
  // The error bus under every part, so that each capture point (HTTP, gRPC, jobs, consumers) reports through it.
  const reporting = (config: C) => ErrorBus.fromConfig(definition.manifest, config)
  const layer = (config: C, standIns?: Layer.Layer<any, any, any>) => {
    const dev = development(config)
    const served = servers(http, {
      name: definition.manifest.name,
      api,
      config,
      declared: routes,
      grpc,
      ...(dev ? { unguarded: dev } : {}),
    })
    const provided_ = given(config, "container")
    const provided =
      standIns === undefined ? provided_ : Layer.merge(provided_, standIns.pipe(Layer.provide(provided_)))
    return Layer.mergeAll(served, background?.(config) ?? Layer.empty).pipe(
      Layer.provideMerge(provided),
      Layer.provideMerge(reporting(config)),
    ) as Layer.Layer<unknown, unknown, never>
  }
  return {
    manifest: definition.manifest,
    config: definition.config,
    definition,
    routes,
    jobs: jobSpecs,
    layer,
    container: (config) => layer(config) as Layer.Layer<never, unknown, never>,
    lambda: (config) =>
      Server.app(Server.guarded(http, routes), { api, maxBodyBytes: config.maxBodyBytes }).pipe(
        Layer.provide(given(config, "lambda")),
        Layer.provide(reporting(config)),
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

/** What the servers, the Lambda app and the error bus read from a function's validated config (`Config.base`). */
export interface ServersConfig extends ErrorBus.FunctionErrorConfig {
  readonly httpPort: number
  /** Read only when the function serves gRPC. */
  readonly grpcPort?: number
  readonly maxBodyBytes: number
  readonly shutdownTimeoutMs: number
  readonly trustedProxies: ReadonlyArray<string>
  /** Where the functions are found (`Config.base`); with etcd the instance registers itself once it listens. */
  readonly serviceRegistry?: RegistrySettings
}

/** What `servers` needs besides the routes. */
interface ServersOptions {
  /** The function's name, as it registers itself (etcd). */
  readonly name: string
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
 * only once HTTP listens. A function with gRPC must have a gRPC port (no random port by omission). With the etcd
 * registry the instance registers itself once both listen, and deregisters before they stop accepting.
 */
const servers = (routes: Layer.Layer<never, unknown, unknown>, options: ServersOptions) => {
  const listening = listeners(routes, options)
  const { config } = options
  if (config.serviceRegistry === undefined) return listening
  const registered = announce(config.serviceRegistry, {
    name: options.name,
    httpPort: config.httpPort,
    grpcPort: options.grpc === undefined ? undefined : config.grpcPort,
  })
  return Layer.merge(listening, registered.pipe(Layer.provide(listening)))
}

const listeners = (routes: Layer.Layer<never, unknown, unknown>, options: ServersOptions) => {
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
