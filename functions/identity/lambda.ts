import { Effect, Layer } from "effect"
import * as Lambda from "../../shared/Lambda.ts"
import * as Server from "../../shared/Server.ts"
import { SessionRevocations } from "../../shared/SessionRevocations.ts"
import { IdentityApi } from "./Api.ts"
import { AuthenticationLive, DomainLive, Infrastructure } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"

/** AWS Lambda entry (API Gateway HTTP API, payload v2): the same app as the container, through middy. */
export const handler = Lambda.handler(
  Layer.unwrap(
    Effect.map(loadConfig, (config) =>
      Server.app(HttpLive.pipe(Layer.provide(AuthenticationLive(config)), Layer.provide(SessionRevocations.layer)), {
        api: IdentityApi,
        maxBodyBytes: config.maxBodyBytes,
      }).pipe(Layer.provide(DomainLive), Layer.provide(Infrastructure(config))),
    ),
  ),
)
