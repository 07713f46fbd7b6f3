import { Effect, Layer } from "effect"
import { SessionRevocations } from "../../shared/access/SessionRevocations.ts"
import * as Main from "../../shared/Main.ts"
import { AuthApi } from "./Api.ts"
import { AuthenticationLive, DomainLive, Events, Identity, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

// Container entry: auth's HTTP server (every route enforced as its manifest declares), then its gRPC server (callers
// verified), and the consumer of identity's account events.
const App = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const servers = Main.servers(HttpLive, {
      api: AuthApi,
      grpc: () => import("./Grpc.ts"),
      config,
      declared: manifest.routes,
    })
    return Layer.mergeAll(servers, Events(config)).pipe(
      Layer.provide(AuthenticationLive(config)),
      Layer.provide(DomainLive(config, SessionRevocations.layerDegrading)),
      Layer.provide(Identity(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

Main.run(manifest.name, App)
