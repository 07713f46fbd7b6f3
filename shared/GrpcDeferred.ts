import { Deferred, Effect, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import type * as Grpc from "./Grpc.ts"
import type { ClientConstructor, GrpcClient, GrpcClientOptions } from "./GrpcClient.ts"
import type { GrpcServerOptions, GrpcService } from "./GrpcServer.ts"
import { register } from "./Health.ts"
import { ServiceIdentity } from "./ServiceIdentity.ts"

/** What a function's Grpc.ts module hands to `afterHttp`: its services. */
export interface GrpcModule<R> {
  readonly services: ReadonlyArray<GrpcService<R>>
}

/**
 * A function's gRPC server, started once its HTTP server listens. grpc-js and the generated contracts are
 * imported only then (no module here imports them statically), so their evaluation stays off the path to the
 * first `/healthz` answer; `/readyz` reports `grpc` failing until the gRPC port listens.
 */
export const afterHttp = <R>(load: () => Promise<GrpcModule<R>>, options: Omit<GrpcServerOptions<R>, "services">) =>
  Layer.unwrap(
    Effect.gen(function* () {
      yield* HttpServer.HttpServer
      const listening = yield* Deferred.make<void>()
      yield* register("grpc", Deferred.await(listening))
      const [{ GrpcServer }, module] = yield* Effect.promise(() => Promise.all([import("./GrpcServer.ts"), load()]))
      return GrpcServer.layer({ ...options, services: module.services }).pipe(
        Layer.tap(() => Deferred.succeed(listening, undefined)),
      )
    }),
  )

/**
 * A client of another function's gRPC service whose contract and grpc-js are imported, and whose channel opens, on
 * the first call rather than at start (the function answers /healthz sooner, with less to load first); the channel
 * closes with the layer that asked for it. Every call carries this function's service identity.
 */
export const lazyClient = <D extends Grpc.ServiceDefinition>(
  load: () => Promise<ClientConstructor<D>>,
  options: GrpcClientOptions,
): Effect.Effect<GrpcClient<D>["call"], never, Scope.Scope | ServiceIdentity> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const identity = yield* ServiceIdentity
    const connect = yield* Effect.cached(
      Effect.promise(() => Promise.all([load(), import("./GrpcClient.ts")])).pipe(
        Effect.flatMap(([ctor, GrpcClient]) => GrpcClient.make(ctor, options)),
        Scope.provide(scope),
        Effect.provideService(ServiceIdentity, identity),
      ),
    )
    const call: GrpcClient<D>["call"] = (method, request, callOptions) =>
      Effect.flatMap(connect, (client) => client.call(method, request, callOptions))
    return call
  })
