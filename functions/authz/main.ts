import { Effect, Layer } from "effect"
import * as GrpcDeferred from "../../shared/GrpcDeferred.ts"
import { run } from "../../shared/Main.ts"
import * as Server from "../../shared/Server.ts"
import * as SessionRevocations from "../../shared/SessionRevocations.ts"
import { AuthzApi } from "./Api.ts"
import { AuthenticationLive, Bus, DomainLive, Events, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: authz's HTTP server, then its gRPC server, and the bootstrap consumer of identity's events.
const Main = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const http = Server.serve(
      HttpLive.pipe(
        Layer.provide(AuthenticationLive(config)),
        Layer.provide(SessionRevocations.following({ service: manifest.name })),
      ),
      {
        api: AuthzApi,
        port: config.httpPort,
        maxBodyBytes: config.maxBodyBytes,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      },
    )
    const grpc = GrpcDeferred.afterHttp(() => import("./Grpc.ts"), {
      port: config.grpcPort,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    })
    return Layer.mergeAll(http, grpc.pipe(Layer.provide(http)), Events(config)).pipe(
      Layer.provide(DomainLive(config)),
      Layer.provide(Bus(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

run(manifest.name, Main)
