import { ConfigProvider, Effect, Layer } from "effect"
import type { HttpServer } from "effect/http"
import type { Db } from "../../../shared/Db.ts"
import * as ErrorBus from "../../../shared/ErrorBus.ts"
import type { EventBus } from "../../../shared/EventBus.ts"
import type { ModuleManifest } from "../../../shared/Module.ts"
import { ServiceIdentity } from "../../../shared/ServiceIdentity.ts"
import { baseUrl, freshSchema, type Running, start } from "../../../shared/testing/harness.ts"
import { Infrastructure, proxyOptions, ServicesLive } from "../App.ts"
import { type GatewayConfig, load, upstreamManifests } from "../Config.ts"
import * as Http from "../Http.ts"
import { manifest } from "../module.ts"
import * as RouteTable from "../RouteTable.ts"
import type { Upstreams } from "../Upstreams.ts"

/** A gateway started in this process on a free port. */
export interface GatewayUnderTest {
  readonly url: string
  readonly config: GatewayConfig
  readonly schema: string
  readonly running: Running<HttpServer.HttpServer | Upstreams>
  close(): Promise<void>
}

/**
 * Starts the gateway as main.ts wires it (with its error bus), routing the given manifests (default: the registry's), with configuration
 * read from `env` over the test environment (real Postgres and Redis; `REDIS_URL: undefined` leaves Redis out).
 * `bus` replaces the event bus the gateway follows (e.g. a PgEventBus reading the test schemas' outboxes).
 */
export const startGateway = async (
  options: {
    readonly manifests?: ReadonlyArray<ModuleManifest>
    readonly env?: Record<string, string | undefined>
    readonly bus?: Layer.Layer<EventBus, never, Db>
  } = {},
): Promise<GatewayUnderTest> => {
  const schema = freshSchema("gateway").schema
  const env: Record<string, string | undefined> = {
    ...process.env,
    DB_SCHEMA: schema,
    LOG_LEVEL: "warn",
    RATE_LIMIT_PREFIX: `gw-test-${schema}`,
    ...options.env,
  }
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
  const upstreams = upstreamManifests(options.manifests)
  const config = await Effect.runPromise(
    load(upstreams).pipe(
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: env as Record<string, string> }))),
    ),
  )
  const table = RouteTable.fromManifests(upstreams)
  const running = (await start(
    Http.serve(proxyOptions(config, table), { port: 0, shutdownTimeoutMs: 1_000 }).pipe(
      Layer.provideMerge(ServicesLive(config, table, options.bus)),
      Layer.provide(ServiceIdentity.layerDev("gateway")),
      Layer.provide(Layer.fresh(Infrastructure(config))),
      // Its error bus, as the gateway's app has it (tests read it from the running context).
      Layer.provideMerge(ErrorBus.fromConfig(manifest, config)),
      // Following events through SessionRevocations reads REDIS_URL through the config provider as well.
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: env as Record<string, string> }))),
    ),
  )) as never as GatewayUnderTest["running"]
  return { url: baseUrl(running), config, schema, running, close: running.close }
}
