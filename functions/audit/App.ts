import { Layer, Option, Redacted } from "effect"
import { Db } from "../../shared/Db.ts"
import * as Kernel from "../../shared/Kernel.ts"
import * as AuditEvents from "./AuditEvents.ts"
import { AuditLog } from "./AuditLog.ts"
import { AuditRepo } from "./AuditRepo.ts"
import type { AuditConfig } from "./Config.ts"
import { manifest } from "./module.ts"

/** Audit's domain: the log over its repository. */
export const DomainLive = AuditLog.layer.pipe(Layer.provide(AuditRepo.layer))

/** The connection URL with `role` set at connect (libpq `options=-c role=...`: the session runs `SET ROLE`). */
export const withRole = (url: Redacted.Redacted<string>, role: string): Redacted.Redacted<string> => {
  const parsed = new URL(Redacted.value(url))
  const existing = parsed.searchParams.get("options")
  parsed.searchParams.set("options", `${existing ? `${existing} ` : ""}-c role=${role}`)
  return Redacted.make(parsed.toString())
}

/**
 * The database the service works with once migrations are applied: with `AUDIT_DB_ROLE`, a pool whose sessions run
 * as that least-privilege role (no UPDATE/DELETE/TRUNCATE on the log); without it, the foundation's pool.
 */
export const WorkingDb = (config: AuditConfig) =>
  Option.match(config.auditDbRole, {
    onNone: () => Layer.empty,
    onSome: (role) =>
      Db.layer({ url: withRole(config.databaseUrl, role), schema: config.dbSchema, poolMax: config.dbPoolMax }),
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
