// Auth's retention rules on the real Postgres: ended sessions and expired refresh tokens go `SESSION_RETENTION_DAYS`
// after they ended; live sessions, recently ended ones and superseded tokens still in their life (reuse detection)
// stay.
import { randomBytes, randomUUID } from "node:crypto"
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Db } from "../../shared/Db.ts"
import { migrate } from "../../shared/Migrator.ts"
import * as Retention from "../../shared/Retention.ts"
import { freshSchema } from "../../shared/testing/harness.ts"
import { manifest } from "./module.ts"
import { retentionRules } from "./SessionsRepo.ts"

const DAY = 86_400_000
const at = (days: number) => new Date(Date.now() + days * DAY)

describe("auth's retention", () => {
  it("deletes sessions ended and refresh tokens expired 30 days ago, and nothing else", async () => {
    const left = await Effect.runPromise(
      Effect.gen(function* () {
        const db = yield* Db
        const s = db.schema
        yield* migrate(manifest.migrations)
        const session = (name: string, expiresInDays: number, revokedDaysAgo?: number) =>
          Effect.as(
            db.query(
              `INSERT INTO ${s}.sessions (id, user_id, created_at, expires_at, revoked_at, user_agent)
               VALUES ($1, $2, $3, $4, $5, $6)`,
              [
                randomUUID(),
                randomUUID(),
                at(-90),
                at(expiresInDays),
                revokedDaysAgo === undefined ? null : at(-revokedDaysAgo),
                name,
              ],
            ),
            name,
          )
        const ids = new Map<string, string>()
        for (const [name, expires, revoked] of [
          ["live", 5, undefined],
          ["expired-long-ago", -31, undefined],
          ["expired-recently", -29, undefined],
          ["revoked-long-ago", 5, 31],
          ["revoked-recently", 5, 29],
        ] as const) {
          yield* session(name, expires, revoked)
          const [row] = yield* db.query<{ id: string }>(`SELECT id FROM ${s}.sessions WHERE user_agent = $1`, [name])
          ids.set(name, row!.id)
        }
        const token = (name: string, sessionName: string, expiresInDays: number, superseded: boolean) =>
          db.query(
            `INSERT INTO ${s}.refresh_tokens (token_hash, session_id, created_at, expires_at, superseded_at)
             VALUES ($1, $2, $3, $4, $5)`,
            [
              Buffer.concat([Buffer.from(`${name}:`), randomBytes(8)]),
              ids.get(sessionName),
              at(-40),
              at(expiresInDays),
              superseded ? at(-1) : null,
            ],
          )
        yield* token("live-current", "live", 6, false)
        // Superseded but still within its life: a second use must still revoke the family.
        yield* token("live-superseded", "live", 2, true)
        yield* token("live-expired-long-ago", "live", -31, true)
        yield* token("live-expired-recently", "live", -29, true)
        yield* token("of-expired-session", "expired-long-ago", -31, false)
        yield* token("of-revoked-session", "revoked-long-ago", 5, false)

        const counts = yield* Retention.run.pipe(Effect.provide(Retention.layer(retentionRules(30), 2)))
        const sessions = yield* db.query<{ user_agent: string }>(`SELECT user_agent FROM ${s}.sessions`)
        const tokens = yield* db.query<{ token_hash: Buffer }>(`SELECT token_hash FROM ${s}.refresh_tokens`)
        return {
          counts,
          sessions: sessions.map((r) => r.user_agent).sort(),
          tokens: tokens.map((r) => r.token_hash.toString("latin1").split(":")[0]).sort(),
        }
      }).pipe(Effect.provide(Db.layer(freshSchema("t_auth_retention"))), Effect.scoped),
    )
    expect(left.sessions).toEqual(["expired-recently", "live", "revoked-recently"])
    // The revoked session's token went with it (ON DELETE CASCADE).
    expect(left.tokens).toEqual(["live-current", "live-expired-recently", "live-superseded"])
    expect(left.counts).toEqual({ refresh_tokens: 2, sessions: 2 })
  })
})
