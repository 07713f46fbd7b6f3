import { Context, Effect, Layer, Option } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"

/** A stored signing key as the repository returns it; the private key is still sealed. */
export interface SigningKeyRow {
  readonly kid: string
  readonly alg: string
  readonly publicJwk: Record<string, unknown>
  readonly privateKeyEnc: string
  readonly activatedAt: Date
  readonly retiredAt: Date | null
  readonly expiresAt: Date | null
}

interface Row extends Record<string, unknown> {
  kid: string
  alg: string
  public_jwk: Record<string, unknown>
  private_key_enc: string
  activated_at: Date
  retired_at: Date | null
  expires_at: Date | null
}

const toKey = (row: Row): SigningKeyRow => ({
  kid: row.kid,
  alg: row.alg,
  publicJwk: row.public_jwk,
  privateKeyEnc: row.private_key_enc,
  activatedAt: row.activated_at,
  retiredAt: row.retired_at,
  expiresAt: row.expires_at,
})

/** SQL access to auth's signing_keys table. */
export class SigningKeysRepo extends Context.Service<
  SigningKeysRepo,
  {
    /** Inserts a new active key unless one is already active (the one-active index); true when inserted. */
    insertActive(key: {
      readonly kid: string
      readonly alg: string
      readonly publicJwk: Record<string, unknown>
      readonly privateKeyEnc: string
      readonly activatedAt: Date
    }): Effect.Effect<boolean, DbError>
    /** The active key, if any. */
    findActive(): Effect.Effect<Option.Option<SigningKeyRow>, DbError>
    /** The active key and every retired key whose expiry is after `now` (the JWKS), newest first. */
    listPublished(now: Date): Effect.Effect<ReadonlyArray<SigningKeyRow>, DbError>
    /**
     * Retires the active key when it was activated at or before `dueBefore`; the row lock makes a concurrent
     * second rotation find nothing to retire. Returns the retired kid.
     */
    retireActive(input: {
      readonly now: Date
      readonly expiresAt: Date
      readonly dueBefore: Date
    }): Effect.Effect<Option.Option<string>, DbError>
  }
>()("auth/SigningKeysRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    SigningKeysRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const table = `${db.schema}.signing_keys`

      const insertActive = Effect.fn("SigningKeysRepo.insertActive")(function* (key: {
        readonly kid: string
        readonly alg: string
        readonly publicJwk: Record<string, unknown>
        readonly privateKeyEnc: string
        readonly activatedAt: Date
      }) {
        const rows = yield* db.query(
          `INSERT INTO ${table} (kid, alg, public_jwk, private_key_enc, activated_at) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT DO NOTHING RETURNING kid`,
          [key.kid, key.alg, JSON.stringify(key.publicJwk), key.privateKeyEnc, key.activatedAt],
        )
        return rows.length === 1
      })

      const findActive = Effect.fn("SigningKeysRepo.findActive")(function* () {
        const rows = yield* db.query<Row>(`SELECT * FROM ${table} WHERE retired_at IS NULL`)
        return Option.map(Option.fromNullishOr(rows[0]), toKey)
      })

      const listPublished = Effect.fn("SigningKeysRepo.listPublished")(function* (now: Date) {
        const rows = yield* db.query<Row>(
          `SELECT * FROM ${table} WHERE retired_at IS NULL OR expires_at > $1 ORDER BY activated_at DESC`,
          [now],
        )
        return rows.map(toKey)
      })

      const retireActive = Effect.fn("SigningKeysRepo.retireActive")(function* (input: {
        readonly now: Date
        readonly expiresAt: Date
        readonly dueBefore: Date
      }) {
        const rows = yield* db.query<{ kid: string }>(
          `UPDATE ${table} SET retired_at = $1, expires_at = $2
           WHERE retired_at IS NULL AND activated_at <= $3 RETURNING kid`,
          [input.now, input.expiresAt, input.dueBefore],
        )
        return Option.map(Option.fromNullishOr(rows[0]), (r) => r.kid)
      })

      return SigningKeysRepo.of({ insertActive, findActive, listPublished, retireActive })
    }),
  )
}
