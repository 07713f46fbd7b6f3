import { Deferred, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import type { GrpcServerOptions, GrpcService } from "./GrpcServer.ts"
import { register } from "./Health.ts"

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
