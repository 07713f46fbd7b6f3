import { Layer, Option } from "effect"
import { Db } from "../../shared/Db.ts"
import * as Kernel from "../../shared/Kernel.ts"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import { AuditRepo } from "./AuditRepo.ts"
import type { AuditConfig } from "./Config.ts"
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
    onSome: (role) => Db.layer({ url: config.databaseUrl, schema: config.dbSchema, poolMax: config.dbPoolMax, role }),
  })

/** The kernel infrastructure audit runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: AuditConfig) => Kernel.foundation(manifest, config)

/**
 * The event side of the container: every producer's topic recorded into the log (the Kafka bus with
 * `KAFKA_BROKERS`, else the Postgres-backed bus reading the producers' outboxes). Lambda leaves it out.
 */
export const Events = (config: AuditConfig) =>
  AuditEvents.layer({ topics: config.auditTopics, group: config.auditGroup }).pipe(
    Layer.provide(Kernel.events({ manifest, kafkaBrokers: config.kafkaBrokers })),
  )
