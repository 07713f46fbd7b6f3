import { Effect, Layer } from "effect"
import * as Lambda from "../../shared/Lambda.ts"
import * as Server from "../../shared/Server.ts"
import { AuthApi } from "./Api.ts"
import { AuthenticationLive, DomainLive, Identity, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

/** AWS Lambda entry (API Gateway HTTP API, payload v2): the same app as the container, through middy. */
export const handler = Lambda.handler(
  Layer.unwrap(
    Effect.map(loadConfig, (config) =>
      Server.app(Server.guarded(HttpLive, manifest.routes), { api: AuthApi, maxBodyBytes: config.maxBodyBytes }).pipe(
        Layer.provide(AuthenticationLive(config)),
        Layer.provide(DomainLive(config)),
        Layer.provide(Identity(config)),
        Layer.provide(Infrastructure(config)),
      ),
    ),
  ),
)
