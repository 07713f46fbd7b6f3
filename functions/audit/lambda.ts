import { Effect, Layer } from "effect"
import * as Lambda from "../../shared/Lambda.ts"
import * as Server from "../../shared/Server.ts"
import { AuditApi } from "./Api.ts"
import { DomainLive, Infrastructure, WorkingDb } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"

/** AWS Lambda entry (API Gateway HTTP API, payload v2): the same HTTP app as the container, without the consumer. */
export const handler = Lambda.handler(
  Layer.unwrap(
    Effect.map(loadConfig, (config) =>
      Server.app(HttpLive, { api: AuditApi, maxBodyBytes: config.maxBodyBytes }).pipe(
        Layer.provide(DomainLive),
        Layer.provide(WorkingDb(config)),
        Layer.provide(Infrastructure(config)),
      ),
    ),
  ),
)
