import { randomUUID } from "node:crypto"
import { Context, Effect, Layer, Option } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import type { Position } from "../../shared/Pagination.ts"
import { User, type UserId, type UserStatus } from "./User.ts"

interface UserRow extends Record<string, unknown> {
  id: string
  email: string
  name: string
  email_verified: boolean
  status: UserStatus
  status_version: string
  created_at: Date
  updated_at: Date
}

const toUser = (row: UserRow) =>
  new User({
    id: row.id as UserId,
    email: row.email,
    name: row.name,
    emailVerified: row.email_verified,
    status: row.status,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  })

/** SQL access to identity's users table. */
export class UsersRepo extends Context.Service<
  UsersRepo,
  {
    /** Inserts a user; fails with the driver's unique violation when the email is taken. */
    insert(input: {
      readonly email: string
      readonly name: string
      readonly passwordHash?: string | undefined
      /** Set for accounts an external identity provider vouches for. */
      readonly emailVerified?: boolean | undefined
    }): Effect.Effect<User, DbError>
    /** One page of users, newest first, after `after` (keyset: created_at, id); `email` filters case-insensitively. */
    list(options: {
      readonly limit: number
      readonly after?: Position | undefined
      readonly email?: string | undefined
    }): Effect.Effect<Array<User>, DbError>
    /** Marks the email verified; None when there is no such active user. */
    markEmailVerified(id: UserId): Effect.Effect<Option.Option<User>, DbError>
    /** Replaces the password hash of an active user; false when there is none. */
    setPasswordHash(id: UserId, passwordHash: string): Effect.Effect<boolean, DbError>
    /** A user's status and status version (deleted users too), if there is such a user. */
    statusOf(id: UserId): Effect.Effect<Option.Option<{ status: UserStatus; version: number }>, DbError>
    /**
     * Sets an undeleted user's status (and name, when given) and counts the change in the status version; with
     * `expectedVersion`, only if the version is still that one. None when nothing was written.
     */
    setStatus(
      id: UserId,
      change: { readonly status: UserStatus; readonly name?: string | undefined },
      expectedVersion?: number,
    ): Effect.Effect<Option.Option<{ user: User; version: number }>, DbError>
    /** The active account with this email (case-insensitive) and its password hash, if any. */
    findCredentials(email: string): Effect.Effect<Option.Option<{ user: User; passwordHash: string | null }>, DbError>
    findById(id: UserId): Effect.Effect<Option.Option<User>, DbError>
    /** The active account with this id and its password hash, if any. */
    findActiveCredentials(
      id: UserId,
    ): Effect.Effect<Option.Option<{ user: User; passwordHash: string | null }>, DbError>
    /** Renames an active user; None when there is no such active user. */
    renameActive(id: UserId, name: string): Effect.Effect<Option.Option<User>, DbError>
    /** Renames an undeleted user; None when there is no such user. */
    rename(id: UserId, name: string): Effect.Effect<Option.Option<User>, DbError>
  }
>()("identity/UsersRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    UsersRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const insert = Effect.fn("UsersRepo.insert")(function* (input: {
        readonly email: string
        readonly name: string
        readonly passwordHash?: string | undefined
        readonly emailVerified?: boolean | undefined
      }) {
        const rows = yield* db.query<UserRow>(
          `INSERT INTO ${db.schema}.users (id, email, name, password_hash, email_verified)
           VALUES ($1, $2, $3, $4, $5) RETURNING *`,
          [randomUUID(), input.email, input.name, input.passwordHash ?? null, input.emailVerified ?? false],
        )
        return toUser(rows[0]!)
      })
      const findById = Effect.fn("UsersRepo.findById")(function* (id: UserId) {
        const rows = yield* db.query<UserRow>(
          `SELECT * FROM ${db.schema}.users WHERE id = $1 AND status <> 'deleted'`,
          [id],
        )
        return Option.map(Option.fromNullishOr(rows[0]), toUser)
      })
      const renameWhere = (condition: string) => (id: UserId, name: string) =>
        Effect.map(
          db.query<UserRow>(
            `UPDATE ${db.schema}.users SET name = $2, updated_at = now() WHERE id = $1 AND ${condition} RETURNING *`,
            [id, name],
          ),
          (rows) => Option.map(Option.fromNullishOr(rows[0]), toUser),
        )
      const rename = Effect.fn("UsersRepo.rename")(renameWhere("status <> 'deleted'"))
      const renameActive = Effect.fn("UsersRepo.renameActive")(renameWhere("status = 'active'"))
      const statusOf = Effect.fn("UsersRepo.statusOf")(function* (id: UserId) {
        const rows = yield* db.query<Pick<UserRow, "status" | "status_version">>(
          `SELECT status, status_version FROM ${db.schema}.users WHERE id = $1`,
          [id],
        )
        return Option.map(Option.fromNullishOr(rows[0]), (row) => ({
          status: row.status,
          version: Number(row.status_version),
        }))
      })
      const setStatus = Effect.fn("UsersRepo.setStatus")(function* (
        id: UserId,
        change: { readonly status: UserStatus; readonly name?: string | undefined },
        expectedVersion?: number,
      ) {
        const rows = yield* db.query<UserRow>(
          `UPDATE ${db.schema}.users
           SET status = $2, name = coalesce($3, name), status_version = status_version + 1, updated_at = now()
           WHERE id = $1 AND status <> 'deleted' AND ($4::bigint IS NULL OR status_version = $4)
           RETURNING *`,
          [id, change.status, change.name ?? null, expectedVersion ?? null],
        )
        return Option.map(Option.fromNullishOr(rows[0]), (row) => ({
          user: toUser(row),
          version: Number(row.status_version),
        }))
      })
      const findActiveCredentials = Effect.fn("UsersRepo.findActiveCredentials")(function* (id: UserId) {
        const rows = yield* db.query<UserRow & { password_hash: string | null }>(
          `SELECT * FROM ${db.schema}.users WHERE id = $1 AND status = 'active'`,
          [id],
        )
        return Option.map(Option.fromNullishOr(rows[0]), (row) => ({
          user: toUser(row),
          passwordHash: row.password_hash,
        }))
      })
      const findCredentials = Effect.fn("UsersRepo.findCredentials")(function* (email: string) {
        const rows = yield* db.query<UserRow & { password_hash: string | null }>(
          `SELECT * FROM ${db.schema}.users WHERE lower(email) = lower($1) AND status = 'active'`,
          [email],
        )
        return Option.map(Option.fromNullishOr(rows[0]), (row) => ({
          user: toUser(row),
          passwordHash: row.password_hash,
        }))
      })
      const list = Effect.fn("UsersRepo.list")(function* (options: {
        readonly limit: number
        readonly after?: Position | undefined
        readonly email?: string | undefined
      }) {
        // Keyset on created_at at the millisecond precision the API (and so the cursor) shows.
        const rows = yield* db.query<UserRow>(
          `SELECT * FROM ${db.schema}.users
           WHERE status <> 'deleted'
             AND ($1::text IS NULL OR lower(email) = lower($1))
             AND ($2::timestamptz IS NULL OR (date_trunc('milliseconds', created_at), id) < ($2::timestamptz, $3::uuid))
           ORDER BY date_trunc('milliseconds', created_at) DESC, id DESC LIMIT $4`,
          [options.email ?? null, options.after?.at ?? null, options.after?.id ?? null, options.limit],
        )
        return rows.map(toUser)
      })
      const markEmailVerified = Effect.fn("UsersRepo.markEmailVerified")(function* (id: UserId) {
        const rows = yield* db.query<UserRow>(
          `UPDATE ${db.schema}.users SET email_verified = true, updated_at = now()
           WHERE id = $1 AND status = 'active' RETURNING *`,
          [id],
        )
        return Option.map(Option.fromNullishOr(rows[0]), toUser)
      })
      const setPasswordHash = Effect.fn("UsersRepo.setPasswordHash")(function* (id: UserId, passwordHash: string) {
        const rows = yield* db.query(
          `UPDATE ${db.schema}.users SET password_hash = $2, updated_at = now()
           WHERE id = $1 AND status = 'active' RETURNING id`,
          [id, passwordHash],
        )
        return rows.length > 0
      })
      return UsersRepo.of({
        insert,
        findById,
        rename,
        renameActive,
        statusOf,
        setStatus,
        findActiveCredentials,
        findCredentials,
        list,
        markEmailVerified,
        setPasswordHash,
      })
    }),
  )
}
