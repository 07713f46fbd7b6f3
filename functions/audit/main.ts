import { Effect, Layer } from "effect"
import * as GrpcDeferred from "../../shared/GrpcDeferred.ts"
import { run } from "../../shared/Main.ts"
import * as Server from "../../shared/Server.ts"
import { AuditApi } from "./Api.ts"
import { DomainLive, Events, Infrastructure, WorkingDb } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: audit's HTTP server, then its gRPC server, and the consumer recording every producer's events.
const Main = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const http = Server.serve(HttpLive, {
      api: AuditApi,
      port: config.httpPort,
      maxBodyBytes: config.maxBodyBytes,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    })
    const grpc = GrpcDeferred.afterHttp(() => import("./Grpc.ts"), {
      port: config.grpcPort,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    })
    return Layer.mergeAll(http, grpc.pipe(Layer.provide(http)), Events(config)).pipe(
      Layer.provide(DomainLive),
      Layer.provide(WorkingDb(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

run(manifest.name, Main)
