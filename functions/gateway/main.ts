import { Effect, Layer } from "effect"
import * as Main from "../../shared/Main.ts"
import { manifests } from "../registry.ts"
import { Identity, Infrastructure, proxyOptions, ServicesLive } from "./App.ts"
import { loadConfig, upstreamManifests } from "./Config.ts"
import * as Http from "./Http.ts"
import { manifest } from "./module.ts"
import * as RouteTable from "./RouteTable.ts"

// Container entry: the gateway's HTTP server (no gRPC) over the route table of every manifest.
const App = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const table = RouteTable.fromManifests(upstreamManifests(manifests))
    return Http.serve(proxyOptions(config, table), {
      port: config.httpPort,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    }).pipe(
      Layer.provide(ServicesLive(config, table)),
      Layer.provide(Identity(config)),
      Layer.provide(Infrastructure(config)),
    )
  }),
)

Main.run(manifest.name, App)
