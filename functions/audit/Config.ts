import { Config, type Effect, Schema } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { SQL_IDENTIFIER } from "../../shared/Db.ts"
import { producerTopics as topicsOfProducers } from "../../shared/Module.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"

/** Every producing function's topic, from the manifests (functions/registry.ts): what audit records by default. */
export const producerTopics = topicsOfProducers(manifests)

const TOPICS = /^\s*[a-z0-9][a-z0-9._-]*(\s*,\s*[a-z0-9][a-z0-9._-]*)*\s*$/

/** Audit's configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http, grpcPort: manifest.ports.grpc }),
  ...Cfg.database(manifest.name),
  /**
   * The least-privilege role the service works as once migrations are applied (`SET ROLE` at connect; the
   * `0101_audit_writer_role` migration creates `<schema>_writer`). Unset: the connecting user (embedded default).
   */
  auditDbRole: Config.option(
    Config.schema(
      Schema.String.check(Schema.isPattern(SQL_IDENTIFIER, { message: "Expected a lower-case SQL identifier" })),
      "AUDIT_DB_ROLE",
    ),
  ),
  /** Topics to record (comma-separated); default: every producer's topic, derived from the manifests. */
  auditTopics: Config.schema(
    Schema.String.check(Schema.isPattern(TOPICS, { message: "Expected comma-separated topic names" })),
    "AUDIT_TOPICS",
  ).pipe(
    Config.map((list) => list.split(",").map((t) => t.trim()) as ReadonlyArray<string>),
    Config.withDefault(producerTopics as ReadonlyArray<string>),
  ),
  /** Prefix of the consumer groups (one per topic: `<group>:<topic>`). */
  auditGroup: Config.String("AUDIT_CONSUMER_GROUP").pipe(Config.withDefault(manifest.name)),
  ...verifierConfig(manifests),
  /** authz's gRPC address (`host:port`): the permission checks of every route. */
  authzGrpcUrl: Cfg.grpcAddress("authz", manifests),
})

/** Audit's validated configuration. */
export type AuditConfig = Effect.Success<typeof loadConfig>
