// Identity's retention rule on the real Postgres: mailed tokens go `EMAIL_TOKEN_RETENTION_DAYS` after they expired,
// used or not; tokens still usable, or expired more recently, stay.
import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Db } from "../../shared/Db.ts"
import { migrate } from "../../shared/Migrator.ts"
import * as Retention from "../../shared/Retention.ts"
import { freshSchema } from "../../shared/testing/harness.ts"
import { retentionRules } from "./EmailTokens.ts"
import { manifest } from "./module.ts"

const DAY = 86_400_000
const at = (days: number) => new Date(Date.now() + days * DAY)

describe("identity's retention", () => {
  it("deletes mailed tokens expired 7 days ago, used or not, and nothing else", async () => {
    const left = await Effect.runPromise(
      Effect.gen(function* () {
        const db = yield* Db
        const s = db.schema
        yield* migrate(manifest.migrations)
        const user = randomUUID()
        yield* db.query(`INSERT INTO ${s}.users (id, email, name) VALUES ($1, 'someone@example.com', 'Someone')`, [
          user,
        ])
        const token = (name: string, expiresInDays: number, usedDaysAgo?: number) =>
          db.query(
            `INSERT INTO ${s}.email_tokens (token_hash, user_id, purpose, expires_at, used_at)
             VALUES ($1, $2, 'reset_password', $3, $4)`,
            [name, user, at(expiresInDays), usedDaysAgo === undefined ? null : at(-usedDaysAgo)],
          )
        yield* token("usable", 0.5)
        yield* token("used-not-expired", 0.5, 0.1)
        yield* token("expired-recently", -6)
        yield* token("expired-long-ago", -8)
        yield* token("used-expired-long-ago", -8, 8.5)
        const counts = yield* Retention.run.pipe(Effect.provide(Retention.layer(retentionRules(7), 1_000)))
        const rows = yield* db.query<{ token_hash: string }>(`SELECT token_hash FROM ${s}.email_tokens`)
        return { counts, tokens: rows.map((r) => r.token_hash).sort() }
      }).pipe(Effect.provide(Db.layer(freshSchema("t_identity_retention"))), Effect.scoped),
    )
    expect(left.tokens).toEqual(["expired-recently", "usable", "used-not-expired"])
    expect(left.counts).toEqual({ email_tokens: 2 })
  })
})
