import { Effect, Layer } from "effect"
import { GrpcServer } from "../../shared/GrpcServer.ts"
import { run } from "../../shared/Main.ts"
import * as Server from "../../shared/Server.ts"
import { IdentityApi } from "./Api.ts"
import { DomainLive, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { IdentityGrpc } from "./Grpc.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: identity's HTTP and gRPC servers on its kernel infrastructure.
const Main = Layer.unwrap(
  Effect.map(loadConfig, (config) =>
    Layer.mergeAll(
      Server.serve(HttpLive, {
        api: IdentityApi,
        port: config.httpPort,
        maxBodyBytes: config.maxBodyBytes,
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      }),
      GrpcServer.layer({
        port: config.grpcPort,
        services: [IdentityGrpc],
        shutdownTimeoutMs: config.shutdownTimeoutMs,
      }),
    ).pipe(Layer.provide(DomainLive), Layer.provide(Infrastructure(config))),
  ),
)

run(manifest.name, Main)
