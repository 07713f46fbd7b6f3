import { Context, Effect, Layer, Option } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import { deleteWhere, type Rule } from "../../shared/Retention.ts"

/** What a refresh token points at, read under the session's row lock. */
export interface RefreshTokenRow {
  readonly sessionId: string
  readonly userId: string
  readonly expiresAt: Date
  readonly supersededAt: Date | null
  readonly sessionRevokedAt: Date | null
  readonly sessionExpiresAt: Date
}

/** SQL access to auth's sessions and refresh tokens (tokens by SHA-256 hash only). */
export class SessionsRepo extends Context.Service<
  SessionsRepo,
  {
    /** Inserts a session and its first refresh token. */
    insert(input: {
      readonly id: string
      readonly userId: string
      readonly tokenHash: Buffer
      readonly now: Date
      readonly expiresAt: Date
      readonly ip: string | null
      readonly userAgent: string | null
    }): Effect.Effect<void, DbError>
    /** The token and its session, locking the session row (serialises refreshes of one family). */
    findTokenForUpdate(tokenHash: Buffer): Effect.Effect<Option.Option<RefreshTokenRow>, DbError>
    /** Supersedes the family's live tokens and adds the next one; the session's expiry slides. */
    rotate(input: {
      readonly sessionId: string
      readonly tokenHash: Buffer
      readonly now: Date
      readonly expiresAt: Date
    }): Effect.Effect<void, DbError>
    /** Ids of the sessions revoked after `since`. */
    revokedSince(since: Date): Effect.Effect<ReadonlyArray<string>, DbError>
    /** Marks sessions revoked (those not revoked yet); returns the ones it revoked with their users. */
    revoke(input: {
      readonly sessionIds?: ReadonlyArray<string>
      readonly userId?: string
      readonly exceptSessionId?: string
      readonly reason: string
      readonly now: Date
    }): Effect.Effect<ReadonlyArray<{ readonly id: string; readonly userId: string }>, DbError>
  }
>()("auth/SessionsRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    SessionsRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const sessions = `${db.schema}.sessions`
      const tokens = `${db.schema}.refresh_tokens`

      const insert = Effect.fn("SessionsRepo.insert")(function* (input: {
        readonly id: string
        readonly userId: string
        readonly tokenHash: Buffer
        readonly now: Date
        readonly expiresAt: Date
        readonly ip: string | null
        readonly userAgent: string | null
      }) {
        // One statement, one round trip per sign-in (the login bench: each query is a write and a wake-up of
        // Postgres on the shared cores). The token's foreign key is checked at the end of the statement, when the
        // session row exists.
        yield* db.query(
          `WITH session AS (
             INSERT INTO ${sessions} (id, user_id, created_at, last_used_at, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, $3, $4, $5, $6)
           )
           INSERT INTO ${tokens} (token_hash, session_id, created_at, expires_at) VALUES ($7, $1, $3, $4)`,
          [input.id, input.userId, input.now, input.expiresAt, input.ip, input.userAgent, input.tokenHash],
        )
      })

      const findTokenForUpdate = Effect.fn("SessionsRepo.findTokenForUpdate")(function* (tokenHash: Buffer) {
        const rows = yield* db.query<{
          session_id: string
          user_id: string
          expires_at: Date
          superseded_at: Date | null
          revoked_at: Date | null
          session_expires_at: Date
        }>(
          `SELECT t.session_id, s.user_id, t.expires_at, t.superseded_at, s.revoked_at, s.expires_at AS session_expires_at
           FROM ${tokens} t JOIN ${sessions} s ON s.id = t.session_id
           WHERE t.token_hash = $1 FOR UPDATE OF s`,
          [tokenHash],
        )
        const row = rows[0]
        if (!row) return Option.none<RefreshTokenRow>()
        return Option.some<RefreshTokenRow>({
          sessionId: row.session_id,
          userId: row.user_id,
          expiresAt: row.expires_at,
          supersededAt: row.superseded_at,
          sessionRevokedAt: row.revoked_at,
          sessionExpiresAt: row.session_expires_at,
        })
      })

      const rotate = Effect.fn("SessionsRepo.rotate")(function* (input: {
        readonly sessionId: string
        readonly tokenHash: Buffer
        readonly now: Date
        readonly expiresAt: Date
      }) {
        yield* db.query(`UPDATE ${tokens} SET superseded_at = $2 WHERE session_id = $1 AND superseded_at IS NULL`, [
          input.sessionId,
          input.now,
        ])
        yield* db.query(
          `INSERT INTO ${tokens} (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
          [input.tokenHash, input.sessionId, input.now, input.expiresAt],
        )
        yield* db.query(`UPDATE ${sessions} SET last_used_at = $2, expires_at = $3 WHERE id = $1`, [
          input.sessionId,
          input.now,
          input.expiresAt,
        ])
      })

      const revoke = Effect.fn("SessionsRepo.revoke")(function* (input: {
        readonly sessionIds?: ReadonlyArray<string>
        readonly userId?: string
        readonly exceptSessionId?: string
        readonly reason: string
        readonly now: Date
      }) {
        if (input.sessionIds === undefined && input.userId === undefined)
          return yield* Effect.die(new Error("revoke needs session ids or a user id"))
        const rows = yield* db.query<{ id: string; user_id: string }>(
          `UPDATE ${sessions} SET revoked_at = $1, revoked_reason = $2
           WHERE revoked_at IS NULL
             AND ($3::uuid[] IS NULL OR id = ANY($3::uuid[]))
             AND ($4::uuid IS NULL OR user_id = $4::uuid)
             AND ($5::uuid IS NULL OR id <> $5::uuid)
           RETURNING id, user_id`,
          [input.now, input.reason, input.sessionIds ?? null, input.userId ?? null, input.exceptSessionId ?? null],
        )
        return rows.map((row) => ({ id: row.id, userId: row.user_id }))
      })

      const revokedSince = Effect.fn("SessionsRepo.revokedSince")(function* (since: Date) {
        const rows = yield* db.query<{ id: string }>(`SELECT id FROM ${sessions} WHERE revoked_at > $1`, [since])
        return rows.map((row) => row.id)
      })

      return SessionsRepo.of({ insert, findTokenForUpdate, rotate, revoke, revokedSince })
    }),
  )
}

/**
 * What retention deletes of auth's sessions, `keepDays` after they served their purpose: refresh tokens expired that
 * long ago (an expired token is refused whether it is superseded or not, so reuse detection loses nothing), then
 * sessions that ended (expired or revoked) that long ago, with their remaining tokens.
 */
export const retentionRules = (keepDays: number): ReadonlyArray<Rule> => [
  { name: "refresh_tokens", keepDays, delete: deleteWhere("refresh_tokens", "token_hash", "expires_at < $2") },
  { name: "sessions", keepDays, delete: deleteWhere("sessions", "id", "expires_at < $2 OR revoked_at < $2") },
]
