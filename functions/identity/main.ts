import { Effect, Layer } from "effect"
import { run } from "../../shared/Main.ts"
import * as Server from "../../shared/Server.ts"
import { IdentityApi } from "./Api.ts"
import { HttpApp, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { manifest } from "./module.ts"

// Container entry: identity's HTTP server on its kernel infrastructure.
const Main = Layer.unwrap(
  Effect.map(loadConfig, (config) =>
    Server.serve(HttpApp, {
      api: IdentityApi,
      port: config.httpPort,
      maxBodyBytes: config.maxBodyBytes,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
    }).pipe(Layer.provide(Infrastructure(config))),
  ),
)

run(manifest.name, Main)
