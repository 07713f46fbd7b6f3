import { Config, type Effect, Schema } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { producerTopics as topicsOfProducers } from "../../shared/Module.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"

/** Every producing function's topic, from the manifests (functions/registry.ts): what analytics counts by default. */
export const producerTopics = topicsOfProducers(manifests)

const TOPICS = /^\s*[a-z0-9][a-z0-9._-]*(\s*,\s*[a-z0-9][a-z0-9._-]*)*\s*$/

/** Analytics' configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http }),
  // Reports over months of rollups and funnels over raw events take longer than the kernel's 1 s default.
  ...Cfg.database(manifest.name, { queryTimeoutMs: 8_000, max: 16 }),
  ...verifierConfig(manifests),
  /** authz's gRPC address (`host:port`): the permission checks of the report routes. */
  authzGrpcUrl: Cfg.grpcAddress("authz", manifests),
  /** Topics whose events are counted (comma-separated); default: every producer's topic, from the manifests. */
  analyticsTopics: Config.schema(
    Schema.String.check(Schema.isPattern(TOPICS, { message: "Expected comma-separated topic names" })),
    "ANALYTICS_TOPICS",
  ).pipe(
    Config.map((list) => list.split(",").map((t) => t.trim()) as ReadonlyArray<string>),
    Config.withDefault(producerTopics as ReadonlyArray<string>),
  ),
  /** Prefix of the consumer groups (one per topic: `<group>:<topic>`). */
  analyticsGroup: Config.String("ANALYTICS_CONSUMER_GROUP").pipe(Config.withDefault(manifest.name)),
  /**
   * How long raw events are kept (days): older partitions are dropped, rollups stay. It is also the window of
   * accepted `occurredAt` (older is a 400) and of the id deduplication.
   */
  rawRetentionDays: Cfg.intBetween("ANALYTICS_RAW_RETENTION_DAYS", 1, 3650).pipe(Config.withDefault(90)),
  /** How often the rollup worker looks for new raw events when it has caught up (ms). */
  rollupIntervalMs: Cfg.intBetween("ANALYTICS_ROLLUP_INTERVAL_MS", 10, 60_000).pipe(Config.withDefault(250)),
})

/** Analytics' validated configuration. */
export type AnalyticsConfig = Effect.Success<typeof loadConfig>
