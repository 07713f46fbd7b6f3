import { Layer, Option } from "effect"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as SessionRevocations from "../../shared/access/SessionRevocations.ts"
import * as Cfg from "../../shared/Config.ts"
import type { Db } from "../../shared/Db.ts"
import * as ErrorBus from "../../shared/ErrorBus.ts"
import type { EventBus } from "../../shared/EventBus.ts"
import type * as FunctionApp from "../../shared/FunctionApp.ts"
import type { Health } from "../../shared/Health.ts"
import * as Jobs from "../../shared/Jobs.ts"
import * as Kernel from "../../shared/Kernel.ts"
import * as Retention from "../../shared/Retention.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { manifests } from "../registry.ts"
import { type GatewayConfig, loadConfig, upstreamManifests } from "./Config.ts"
import { EdgeAuth } from "./EdgeAuth.ts"
import * as Http from "./Http.ts"
import { manifest } from "./module.ts"
import { OpenApiDocument } from "./OpenApi.ts"
import type { ProxyOptions } from "./ProxyOptions.ts"
import { RateLimits } from "./RateLimits.ts"
import { settingsOf } from "./RouteSettings.ts"
import * as RouteTable from "./RouteTable.ts"
import { ServiceRegistry } from "./ServiceRegistry.ts"
import { Upstreams } from "./Upstreams.ts"

/** What the proxy reads from the config, with the route table it serves. */
export const proxyOptions = (config: GatewayConfig, table: RouteTable.RouteTable): ProxyOptions => ({
  table,
  maxBodyBytes: config.maxBodyBytes,
  timeoutMs: config.timeoutMs,
  ipPerMinute: config.ipPerMinute,
  userPerMinute: config.userPerMinute,
  overrides: config.routeOverrides,
  cors: { origins: config.corsOrigins },
  trustedProxies: config.trustedProxies,
  development: config.env !== "production",
})

const kernelOf = (config: GatewayConfig) => ({
  service: manifest.name,
  version: manifest.version,
  logLevel: config.logLevel,
  logPretty: config.logPretty,
  otelEndpoint: config.otelEndpoint,
})

/** The gateway's identity on internal calls (authz's `Authorize`); nothing calls the gateway. */
export const Identity = (config: GatewayConfig) => Kernel.identity(manifest, manifests, config)

/** Logging, telemetry and the health registry. */
export const Infrastructure = (config: GatewayConfig) => Kernel.base(kernelOf(config))

/**
 * The bus the gateway follows events with (consumer only: it publishes nothing, so no relay): Kafka with
 * `KAFKA_BROKERS`, else the Postgres-backed bus.
 */
export const Bus = (config: GatewayConfig) => Kernel.events(manifest, config)

/** Its jobs, when it has a database: the kernel's retention job over its inbox. */
const jobs = Retention.jobs

/**
 * What the gateway learns from events. Revoked sessions: process memory fed by auth's `auth.session.revoked` events,
 * and Redis's shared list with `REDIS_URL`. Authz changes clear the permission cache. Following events needs a
 * database (`DATABASE_URL`): the gateway's own small schema holds only the kernel's inbox and bus positions, no
 * data. Without one (Redis must be set then, `loadConfig` checks) the permission cache relies on its short TTL, and
 * while Redis cannot answer the edge lets tokens through unchecked for revocation: every service behind checks
 * each request against the events it follows (zero trust), so a revoked token still gets its 401 there.
 */
export const Following = (config: GatewayConfig, bus: Layer.Layer<EventBus, never, Db | Health> = Bus(config)) =>
  Option.match(config.databaseUrl, {
    onNone: () => SessionRevocations.SessionRevocations.layerDegrading,
    onSome: (url) =>
      Layer.mergeAll(
        SessionRevocations.following({ service: manifest.name, feed: sessionRevoked }),
        Permissions.following(manifest.name, permissionChanges),
        // Its inbox is pruned by the kernel's retention job, as every function with the kernel's tables does.
        Jobs.layer({
          service: manifest.name,
          url,
          schema: config.dbSchema,
          jobs,
          shutdownTimeoutMs: config.shutdownTimeoutMs,
        }).pipe(Layer.provide(Retention.layer(Retention.kernelRules(config), config.retentionBatchSize))),
      ).pipe(
        Layer.provide(bus),
        Layer.provide(
          Kernel.database({
            ...kernelOf(config),
            db: Cfg.dbOptions(url, config),
            migrations: manifest.migrations,
          }),
        ),
      ),
  })

/** The gateway's services: registry, upstream pools, edge authentication, permissions, rate limits, OpenAPI. */
export const ServicesLive = (
  config: GatewayConfig,
  table: RouteTable.RouteTable,
  bus?: Layer.Layer<EventBus, never, Db | Health>,
) =>
  Layer.mergeAll(
    Upstreams.layer({
      connections: config.upstreamConnections,
      retries: config.retries,
      breakerFailures: config.breakerFailures,
      breakerCooldownMs: config.breakerCooldownMs,
    }),
    OpenApiDocument.layer({
      table,
      version: manifest.version,
      edge: {
        settingsOf: (route) => settingsOf(route, proxyOptions(config, table)),
      },
    }),
  ).pipe(
    Layer.provideMerge(
      ServiceRegistry.layer(config.serviceRegistry, upstreamManifests(manifests), config.upstreamUrls),
    ),
    Layer.merge(
      EdgeAuth.layer.pipe(
        Layer.provideMerge(
          EdgeAuth.verifier({
            issuer: config.jwtIssuer,
            audience: config.jwtAudience,
            unrevokedMemoMs: config.revocationCheckMs,
            jwks: { url: config.authJwksUrl },
          }),
        ),
      ),
    ),
    Layer.merge(
      RateLimits.layer({ redisUrl: config.redisUrl, prefix: config.rateLimitPrefix, syncMs: config.rateLimitSyncMs }),
    ),
    Layer.provideMerge(Following(config, bus)),
    Layer.provideMerge(Permissions.layer({ address: config.authzGrpcUrl, ttlMs: config.permissionCacheMs })),
  )

/**
 * The gateway as its entry runs it: the edge's HTTP server (no gRPC, no Lambda entry) over the route table of every
 * function's routes (from the registry), with its services, and its error bus under all of it (as `FunctionApp` gives
 * every other function its own).
 */
export const app: FunctionApp.FunctionApp<GatewayConfig> = {
  manifest,
  config: loadConfig,
  jobs,
  container: (config) => {
    const table = RouteTable.fromManifests(upstreamManifests(manifests))
    return Http.serve(proxyOptions(config, table), {
      port: config.httpPort,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      console: { connectOrigins: config.consoleConnectOrigins },
    }).pipe(
      Layer.provide(ServicesLive(config, table)),
      Layer.provide(Identity(config)),
      Layer.provide(Infrastructure(config)),
      Layer.provide(ErrorBus.fromConfig(manifest, config)),
    )
  },
}
