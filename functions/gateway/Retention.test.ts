// The gateway with a database (it follows events without Redis) prunes its inbox with the kernel's retention job, as
// every function with the kernel's tables does: its job store is installed in `<schema>_jobs` with the job scheduled.
import { randomBytes } from "node:crypto"
import { ConfigProvider, Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { sql } from "../../shared/testing/harness.ts"
import { Following, Identity } from "./App.ts"
import { loadConfig } from "./Config.ts"
import { manifest } from "./module.ts"

describe("the gateway's retention", () => {
  it("schedules the kernel's retention job over its inbox when it has a database", async () => {
    const schema = `t_gw_${randomBytes(4).toString("hex")}`
    const env = { ...process.env, DB_SCHEMA: schema, LOG_LEVEL: "warn" } as Record<string, string>
    delete env.REDIS_URL
    delete env.KAFKA_BROKERS
    const config = await Effect.runPromise(
      loadConfig.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))),
    )
    const layer = Following(config).pipe(
      // The permission cache it clears on authz's events (a channel opened only on a first check).
      Layer.provide(Permissions.layer({ address: config.authzGrpcUrl, ttlMs: 500 })),
      Layer.provide(Identity(config)),
      Layer.provide(Kernel.base({ service: manifest.name, version: manifest.version, logLevel: "warn" })),
    )
    try {
      await Effect.runPromise(
        Effect.gen(function* () {
          yield* Layer.build(layer)
          // The store starts in the background: wait for the schedule it writes.
          const deadline = Date.now() + 30_000
          for (;;) {
            const found = yield* Effect.promise(() =>
              sql(`SELECT name, cron FROM ${schema}_jobs.schedule`).catch(() => []),
            )
            if (found.length > 0 || Date.now() > deadline) {
              expect(found).toEqual([{ name: "retention", cron: "*/10 * * * *" }])
              return
            }
            yield* Effect.sleep("100 millis")
          }
        }).pipe(Effect.scoped),
      )
    } finally {
      await sql(`DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
      await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    }
  }, 60_000)
})
