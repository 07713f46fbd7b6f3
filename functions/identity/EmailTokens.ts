import { createHash, randomBytes } from "node:crypto"
import { Context, Duration, Effect, Layer, Option } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import { deleteWhere, type Rule } from "../../shared/Retention.ts"
import type { UserId } from "./User.ts"

/** What a mailed token lets its holder do. */
export type TokenPurpose = "verify_email" | "reset_password"

/** How long each kind of token lives: verification 24 h, password reset 1 h. */
export const TOKEN_TTL: Record<TokenPurpose, Duration.Duration> = {
  verify_email: Duration.hours(24),
  reset_password: Duration.hours(1),
}

const sha256 = (token: string) => createHash("sha256").update(token).digest("hex")

/** Single-use tokens sent by mail: 32 random bytes to the user, only their SHA-256 in the database. */
export class EmailTokens extends Context.Service<
  EmailTokens,
  {
    /** A new token for `userId`; earlier unused tokens of the same purpose stop working. */
    issue(userId: UserId, purpose: TokenPurpose): Effect.Effect<string, DbError>
    /** Spends a token: the user it was for, once, before it expires; None otherwise. */
    consume(token: string, purpose: TokenPurpose): Effect.Effect<Option.Option<UserId>, DbError>
    /** Whether a token could be spent now (unused, unexpired); spends nothing. */
    isUsable(token: string, purpose: TokenPurpose): Effect.Effect<boolean, DbError>
  }
>()("identity/EmailTokens") {
  /** The token store in identity's schema. */
  static readonly layer = Layer.effect(
    EmailTokens,
    Effect.gen(function* () {
      const db = yield* Db
      const issue = Effect.fn("EmailTokens.issue")(function* (userId: UserId, purpose: TokenPurpose) {
        const token = randomBytes(32).toString("base64url")
        yield* db.query(
          `UPDATE ${db.schema}.email_tokens SET used_at = now()
           WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL`,
          [userId, purpose],
        )
        yield* db.query(
          `INSERT INTO ${db.schema}.email_tokens (token_hash, user_id, purpose, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
          [sha256(token), userId, purpose, Duration.toSeconds(TOKEN_TTL[purpose])],
        )
        return token
      })
      // One statement: two concurrent uses of the same token cannot both succeed.
      const consume = Effect.fn("EmailTokens.consume")(function* (token: string, purpose: TokenPurpose) {
        const rows = yield* db.query<{ user_id: string }>(
          `UPDATE ${db.schema}.email_tokens SET used_at = now()
           WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
           RETURNING user_id`,
          [sha256(token), purpose],
        )
        return Option.map(Option.fromNullishOr(rows[0]), (row) => row.user_id as UserId)
      })
      const isUsable = Effect.fn("EmailTokens.isUsable")(function* (token: string, purpose: TokenPurpose) {
        const rows = yield* db.query(
          `SELECT 1 FROM ${db.schema}.email_tokens
           WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()`,
          [sha256(token), purpose],
        )
        return rows.length > 0
      })
      return EmailTokens.of({ issue, consume, isUsable })
    }),
  )
}

/** What retention deletes of the mailed tokens: those expired `keepDays` ago (a used token expires like any other). */
export const retentionRules = (keepDays: number): ReadonlyArray<Rule> => [
  { name: "email_tokens", keepDays, delete: deleteWhere("email_tokens", "token_hash", "expires_at < $2") },
]
