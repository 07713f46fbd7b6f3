import { Effect, Layer, Option } from "effect"
import * as DevMailbox from "../../shared/DevMailbox.ts"
import * as GrpcDeferred from "../../shared/GrpcDeferred.ts"
import { run } from "../../shared/Main.ts"
import * as Server from "../../shared/Server.ts"
import * as SessionRevocations from "../../shared/SessionRevocations.ts"
import { IdentityApi } from "./Api.ts"
import { AuthenticationLive, DomainLive, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: identity's HTTP server, then its gRPC server, on its kernel infrastructure.
const Main = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    // The dev mailbox is readable over HTTP only when mail goes to it and never in production.
    const devMail = Option.isNone(config.smtpUrl) && config.env !== "production" ? DevMailbox.route : Layer.empty
    const routes = Layer.mergeAll(
      HttpLive.pipe(
        Layer.provide(AuthenticationLive(config)),
        Layer.provide(SessionRevocations.following({ service: manifest.name })),
      ),
      devMail,
    )
    const http = Server.serve(routes, {
      api: IdentityApi,
      port: config.httpPort,
      maxBodyBytes: config.maxBodyBytes,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      trustedProxies: config.trustedProxies,
    })
    const grpc = GrpcDeferred.afterHttp(() => import("./Grpc.ts"), {
      port: config.grpcPort,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    })
    return Layer.mergeAll(http, grpc.pipe(Layer.provide(http))).pipe(
      Layer.provide(DomainLive),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

run(manifest.name, Main)
