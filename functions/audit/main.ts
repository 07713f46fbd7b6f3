import { Effect, Layer } from "effect"
import * as SessionRevocations from "../../shared/access/SessionRevocations.ts"
import * as Main from "../../shared/Main.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { AuditApi } from "./Api.ts"
import { AccessLive, Bus, DomainLive, Events, Identity, Infrastructure, WorkingDb } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: audit's HTTP server (every route enforced as its manifest declares), then its gRPC server (callers
// verified), and the consumer recording every producer's events.
const App = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const servers = Main.servers(HttpLive, {
      api: AuditApi,
      grpc: () => import("./Grpc.ts"),
      config,
      declared: manifest.routes,
    })
    return Layer.mergeAll(servers, Events(config)).pipe(
      Layer.provideMerge(AccessLive(config)),
      Layer.provide(SessionRevocations.following({ service: manifest.name, feed: sessionRevoked })),
      Layer.provide(DomainLive),
      Layer.provide(WorkingDb(config)),
      Layer.provide(Bus(config)),
      Layer.provide(Identity(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

Main.run(manifest.name, App)
