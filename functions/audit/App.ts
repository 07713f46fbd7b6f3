import { Layer, Option } from "effect"
import * as Authentication from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as Cfg from "../../shared/Config.ts"
import { Db } from "../../shared/Db.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { revocationsFor } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { manifests } from "../registry.ts"
import { AuditApi } from "./Api.ts"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import { AuditRepo } from "./AuditRepo.ts"
import { type AuditConfig, loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"

/** Audit's domain: the log over its repository. */
export const DomainLive = AuditLog.layer.pipe(Layer.provide(AuditRepo.layer))

/**
 * The database the service works with once migrations are applied: with `AUDIT_DB_ROLE`, a pool whose sessions run
 * as that least-privilege role (no UPDATE/DELETE/TRUNCATE on the log); without it, the foundation's pool.
 */
export const WorkingDb = (config: AuditConfig) =>
  Option.match(config.auditDbRole, {
    onNone: () => Layer.empty,
    onSome: (role) => Db.layer({ ...Cfg.dbOptions(config.databaseUrl, config), role }),
  })

/**
 * How audit enforces its own routes (zero trust): bearer tokens against auth's JWKS and the session revocations, and
 * every route's permission through authz's `Authorize` (answers reused ≤ 500 ms). Needs `SessionRevocations` and
 * `ServiceIdentity`.
 */
export const AccessLive = (config: AuditConfig) =>
  Layer.merge(
    Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: config.authJwksUrl } }),
    Permissions.layer({ address: config.authzGrpcUrl, ttlMs: 500 }),
  )

/** Audit's identity on internal calls; it serves the functions that depend on it (the gateway). */
export const Identity = (config: AuditConfig) => Kernel.identity(manifest, manifests, config)

/** The kernel infrastructure audit runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: AuditConfig) => Kernel.foundation(manifest, config)

/**
 * The event side of the container: every producer's topic recorded into the log (the Kafka bus with
 * `KAFKA_BROKERS`, else the Postgres-backed bus reading the producers' outboxes). Lambda leaves it out.
 */
export const Background = (config: AuditConfig) =>
  AuditEvents.layer({ topics: config.auditTopics, group: config.auditGroup }).pipe(
    Layer.merge(Permissions.following(manifest.name, permissionChanges)),
  )

/** The bus audit's consumers follow (Kafka with `KAFKA_BROKERS`, else the Postgres-backed bus). */
export const Bus = (config: AuditConfig) => Kernel.events(manifest, config)

/**
 * Audit as its entries and tests run it: the HTTP contract (every route enforced as declared), gRPC (callers verified),
 * and in a container the consumer recording every producer's events.
 */
export const app = FunctionApp.define({
  manifest,
  api: AuditApi,
  config: loadConfig,
  http: HttpLive,
  grpc: () => import("./Grpc.ts"),
  background: Background,
  services: (config, runtime) =>
    AccessLive(config).pipe(
      Layer.provideMerge(revocationsFor(manifest.name, runtime, Bus(config))),
      Layer.provideMerge(DomainLive),
      Layer.provideMerge(WorkingDb(config)),
      Layer.provideMerge(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
})
