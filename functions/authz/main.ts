import { Effect, Layer } from "effect"
import * as Main from "../../shared/Main.ts"
import * as SessionRevocations from "../../shared/SessionRevocations.ts"
import { AuthzApi } from "./Api.ts"
import { AuthenticationLive, Bus, DomainLive, Events, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: authz's HTTP server, then its gRPC server, and the bootstrap consumer of identity's events.
const App = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const servers = Main.servers(
      HttpLive.pipe(
        Layer.provide(AuthenticationLive(config)),
        Layer.provide(SessionRevocations.following({ service: manifest.name })),
      ),
      { api: AuthzApi, grpc: () => import("./Grpc.ts"), config },
    )
    return Layer.mergeAll(servers, Events(config)).pipe(
      Layer.provide(DomainLive(config)),
      Layer.provide(Bus(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

Main.run(manifest.name, App)
