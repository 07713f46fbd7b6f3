import { Effect, Layer } from "effect"
import * as Main from "../../shared/Main.ts"
import * as Server from "../../shared/Server.ts"
import { manifests } from "../registry.ts"
import { Infrastructure, proxyOptions, ServicesLive } from "./App.ts"
import { loadConfig, upstreamManifests } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"
import * as RouteTable from "./RouteTable.ts"

// Container entry: the gateway's HTTP server (no gRPC) over the route table of every manifest.
const App = Layer.unwrap(
  Effect.map(loadConfig, (config) => {
    const table = RouteTable.fromManifests(upstreamManifests(manifests))
    return Server.serve(HttpLive(proxyOptions(config, table)), {
      port: config.httpPort,
      maxBodyBytes: config.maxBodyBytes,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      trustedProxies: config.trustedProxies,
    }).pipe(Layer.provide(ServicesLive(config, table)), Layer.provide(Infrastructure(config)))
  }),
)

Main.run(manifest.name, App)
