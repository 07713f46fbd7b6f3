import { Effect, Layer } from "effect"
import * as Main from "../../shared/Main.ts"
import { AuditApi } from "./Api.ts"
import { DomainLive, Events, Infrastructure, WorkingDb } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: audit's HTTP server, then its gRPC server, and the consumer recording every producer's events.
const App = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const servers = Main.servers(HttpLive, { api: AuditApi, grpc: () => import("./Grpc.ts"), config })
    return Layer.mergeAll(servers, Events(config)).pipe(
      Layer.provide(DomainLive),
      Layer.provide(WorkingDb(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

Main.run(manifest.name, App)
