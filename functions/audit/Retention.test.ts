// Audit's retention job runs as the least-privilege role audit works as in production (AUDIT_DB_ROLE): every kernel
// rule's table must be granted to it (a rule it may not run fails the job every 10 minutes), and the log never.
import { Effect, Option } from "effect"
import { describe, expect, it } from "vitest"
import { Db } from "../../shared/Db.ts"
import { migrate } from "../../shared/Migrator.ts"
import * as Retention from "../../shared/Retention.ts"
import { freshSchema, sql } from "../../shared/testing/harness.ts"
import { manifest } from "./module.ts"

describe("audit's retention as its writer role", () => {
  it("runs every kernel rule, and still may not delete the log", async () => {
    const options = freshSchema("t_audit_retention")
    // Migrated as the owner (the writer role is made by the migrations).
    await Effect.runPromise(migrate(manifest.migrations).pipe(Effect.provide(Db.layer(options)), Effect.scoped))
    const s = options.schema
    await sql(
      `INSERT INTO ${s}.inbox (consumer, event_id, processed_at) VALUES ('c', 'old', now() - interval '30 days')`,
    )
    const rules = Retention.kernelRules({
      eventRetentionDays: 7,
      inboxRetentionDays: 14,
      mailRetentionDays: 7,
      kafkaBrokers: Option.some(["kafka:9092"]),
    })
    const asWriter = Db.layer({ ...options, role: `${s}_writer` })
    const counts = await Effect.runPromise(
      Retention.run.pipe(Effect.provide(Retention.layer(rules, 100)), Effect.provide(asWriter), Effect.scoped),
    )
    expect(Object.keys(counts).sort()).toEqual(rules.map((r) => r.name).sort())
    expect(counts.inbox).toBe(1)
    const refused = await Effect.runPromise(
      Effect.flatMap(Effect.service(Db), (db) => Effect.exit(db.query(`DELETE FROM ${s}.audit_events`))).pipe(
        Effect.provide(asWriter),
        Effect.scoped,
      ),
    )
    expect(refused._tag).toBe("Failure")
  })
})
