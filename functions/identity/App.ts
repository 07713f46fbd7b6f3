import { Layer } from "effect"
import * as Kernel from "../../shared/Kernel.ts"
import { Outbox } from "../../shared/Outbox.ts"
import type { IdentityConfig } from "./Config.ts"
import { manifest } from "./module.ts"
import { Passwords } from "./Passwords.ts"
import { Users } from "./Users.ts"
import { UsersRepo } from "./UsersRepo.ts"

/** Identity's domain services over the kernel's Db (argon2id at OWASP's minimum cost unless configured). */
export const DomainLive = Users.layer.pipe(
  Layer.provide([UsersRepo.layer, Outbox.layer(manifest.name), Passwords.layer()]),
)

/**
 * The kernel infrastructure identity runs on (logging, telemetry, health, Postgres + migrations, events), from
 * config. Lambda leaves the event relay out (`events: false`): a background loop freezes between invocations.
 */
export const Infrastructure = (config: IdentityConfig, options: { readonly events?: boolean } = {}) => {
  const kernel = {
    service: manifest.name,
    version: manifest.version,
    logLevel: config.logLevel,
    logPretty: config.logPretty,
    otelEndpoint: config.otelEndpoint,
  }
  const events =
    options.events === false
      ? Layer.empty
      : Kernel.events({ service: manifest.name, kafkaBrokers: config.kafkaBrokers })
  return events.pipe(
    Layer.provideMerge(
      Kernel.database({
        ...kernel,
        db: { url: config.databaseUrl, schema: config.dbSchema, poolMax: config.dbPoolMax },
        migrations: manifest.migrations,
      }),
    ),
    Layer.provideMerge(Kernel.base(kernel)),
  )
}
