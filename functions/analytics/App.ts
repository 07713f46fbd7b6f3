import { Layer } from "effect"
import * as Authentication from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { deleteWhere } from "../../shared/Retention.ts"
import { revocationsFor } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { manifests } from "../registry.ts"
import { AnalyticsApi } from "./Api.ts"
import { type AnalyticsConfig, loadConfig } from "./Config.ts"
import { Events } from "./Events.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"
import { PARTITIONS_JOB, Partitions, partitionsJob } from "./Partitions.ts"
import * as PlatformEvents from "./PlatformEvents.ts"
import { Reports } from "./Reports.ts"
import { Rollups } from "./Rollups.ts"

/** Analytics' domain: the raw events, their rollups, the reports and the partitions (made for the window at start). */
export const DomainLive = (config: AnalyticsConfig) =>
  Layer.mergeAll(
    Events.layer(config),
    Rollups.layer,
    Reports.layer,
    Partitions.atStart.pipe(Layer.provideMerge(Partitions.layer(config))),
  )

/**
 * How analytics enforces its own routes (zero trust): bearer tokens against auth's JWKS and the session revocations
 * (the open ingestion verifies a token itself when one is sent), and the reports' permission through authz's
 * `Authorize` (answers reused ≤ 500 ms). Needs `SessionRevocations` and `ServiceIdentity`.
 */
export const AccessLive = (config: AnalyticsConfig) =>
  Layer.merge(
    Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: config.authJwksUrl } }),
    Permissions.layer({ address: config.authzGrpcUrl, ttlMs: 500 }),
  )

/** Analytics' identity on internal calls (its service tokens to authz); no function depends on it. */
export const Identity = (config: AnalyticsConfig) => Kernel.identity(manifest, manifests, config)

/** The kernel infrastructure analytics runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: AnalyticsConfig) => Kernel.foundation(manifest, config)

/** The bus analytics' consumers follow (Kafka with `KAFKA_BROKERS`, else the Postgres-backed bus). */
export const Bus = (config: AnalyticsConfig) => Kernel.events(manifest, config)

/**
 * The container's background work: every producer's topic counted, the rollup worker, and authz's changes clearing
 * the permission cache. Lambda leaves it out (its ingestions wait in the raw table for a container's worker; reports
 * read them there meanwhile).
 */
export const Background = (config: AnalyticsConfig) =>
  Layer.mergeAll(
    PlatformEvents.layer({
      topics: config.analyticsTopics,
      group: config.analyticsGroup,
      rawRetentionDays: config.rawRetentionDays,
    }),
    Rollups.worker(config.rollupIntervalMs),
    Permissions.following(manifest.name, permissionChanges),
  )

/**
 * Analytics as its entries and tests run it: its HTTP contract (every route enforced as declared), its partition job,
 * the retention of event ids past the raw window, and in a container the consumer and the rollup worker.
 */
export const app = FunctionApp.define({
  manifest,
  api: AnalyticsApi,
  config: loadConfig,
  http: HttpLive,
  background: Background,
  jobs: { [PARTITIONS_JOB]: partitionsJob },
  retention: (config) => [
    {
      name: "event_ids",
      keepDays: config.rawRetentionDays,
      delete: deleteWhere("event_ids", "id", "occurred_at < $2"),
    },
  ],
  services: (config, runtime) =>
    DomainLive(config).pipe(
      Layer.provideMerge(AccessLive(config)),
      Layer.provideMerge(revocationsFor(manifest.name, runtime, Bus(config))),
      Layer.provideMerge(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
})
