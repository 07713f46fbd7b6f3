import { Effect, Layer } from "effect"
import * as GrpcDeferred from "../../shared/GrpcDeferred.ts"
import { run } from "../../shared/Main.ts"
import * as Server from "../../shared/Server.ts"
import { AuthApi } from "./Api.ts"
import { AuthenticationLive, DomainLive, Events, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: auth's HTTP server, then its gRPC server, and the consumer of identity's account events.
const Main = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const http = Server.serve(HttpLive.pipe(Layer.provide(AuthenticationLive(config))), {
      api: AuthApi,
      port: config.httpPort,
      maxBodyBytes: config.maxBodyBytes,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      trustedProxies: config.trustedProxies,
    })
    const grpc = GrpcDeferred.afterHttp(() => import("./Grpc.ts"), {
      port: config.grpcPort,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    })
    return Layer.mergeAll(http, grpc.pipe(Layer.provide(http)), Events(config)).pipe(
      Layer.provide(DomainLive(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

run(manifest.name, Main)
