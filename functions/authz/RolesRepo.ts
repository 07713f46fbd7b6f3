import { randomUUID } from "node:crypto"
import { Context, Effect, Layer, Option } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import type { Position } from "../../shared/Pagination.ts"
import { Role, type RoleId } from "./Role.ts"

/** A roles row as selected. */
export interface RoleRow extends Record<string, unknown> {
  id: string
  name: string
  description: string
  permissions: Array<string>
  builtin: boolean
  created_at: Date
  updated_at: Date
}

/** A row as the API shows it. */
export const toRole = (row: RoleRow) =>
  new Role({
    id: row.id as RoleId,
    name: row.name,
    description: row.description,
    permissions: row.permissions,
    builtin: row.builtin,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  })

/** SQL access to authz's roles table. */
export class RolesRepo extends Context.Service<
  RolesRepo,
  {
    /** Inserts a role; fails with the driver's unique violation when the name is taken. */
    insert(input: {
      readonly name: string
      readonly description: string
      readonly permissions: ReadonlyArray<string>
    }): Effect.Effect<Role, DbError>
    findById(id: RoleId): Effect.Effect<Option.Option<Role>, DbError>
    /** One page of roles, oldest first, after `after` (keyset: created_at, id). */
    list(options: {
      readonly limit: number
      readonly after?: Position | undefined
    }): Effect.Effect<Array<Role>, DbError>
    /** Applies the changes (absent fields stay); None when there is no such role. Unique violation on a taken name. */
    update(
      id: RoleId,
      changes: {
        readonly name?: string | undefined
        readonly description?: string | undefined
        readonly permissions?: ReadonlyArray<string> | undefined
      },
    ): Effect.Effect<Option.Option<Role>, DbError>
    /** Deletes a role and its assignments; None when there was no such role, else how many users lost it. */
    delete(id: RoleId): Effect.Effect<Option.Option<number>, DbError>
  }
>()("authz/RolesRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    RolesRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const insert = Effect.fn("RolesRepo.insert")(function* (input: {
        readonly name: string
        readonly description: string
        readonly permissions: ReadonlyArray<string>
      }) {
        const rows = yield* db.query<RoleRow>(
          `INSERT INTO ${db.schema}.roles (id, name, description, permissions) VALUES ($1, $2, $3, $4) RETURNING *`,
          [randomUUID(), input.name, input.description, input.permissions],
        )
        return toRole(rows[0]!)
      })
      const findById = Effect.fn("RolesRepo.findById")(function* (id: RoleId) {
        const rows = yield* db.query<RoleRow>(`SELECT * FROM ${db.schema}.roles WHERE id = $1`, [id])
        return Option.map(Option.fromNullishOr(rows[0]), toRole)
      })
      const list = Effect.fn("RolesRepo.list")(function* (options: {
        readonly limit: number
        readonly after?: Position | undefined
      }) {
        const rows = yield* db.query<RoleRow>(
          `SELECT * FROM ${db.schema}.roles
           WHERE $1::timestamptz IS NULL OR (created_at, id) > ($1::timestamptz, $2::uuid)
           ORDER BY created_at, id LIMIT $3`,
          [options.after?.at ?? null, options.after?.id ?? null, options.limit],
        )
        return rows.map(toRole)
      })
      const update = Effect.fn("RolesRepo.update")(function* (
        id: RoleId,
        changes: {
          readonly name?: string | undefined
          readonly description?: string | undefined
          readonly permissions?: ReadonlyArray<string> | undefined
        },
      ) {
        const rows = yield* db.query<RoleRow>(
          `UPDATE ${db.schema}.roles
           SET name = coalesce($2, name), description = coalesce($3, description),
               permissions = coalesce($4, permissions), updated_at = date_trunc('milliseconds', now())
           WHERE id = $1 RETURNING *`,
          [id, changes.name ?? null, changes.description ?? null, changes.permissions ?? null],
        )
        return Option.map(Option.fromNullishOr(rows[0]), toRole)
      })
      const del = Effect.fn("RolesRepo.delete")(function* (id: RoleId) {
        const removed = yield* db.query<{ n: number }>(
          `WITH gone AS (DELETE FROM ${db.schema}.user_roles WHERE role_id = $1 RETURNING 1)
           SELECT count(*)::int AS n FROM gone`,
          [id],
        )
        const rows = yield* db.query(`DELETE FROM ${db.schema}.roles WHERE id = $1 RETURNING id`, [id])
        return rows.length === 0 ? Option.none<number>() : Option.some(removed[0]?.n ?? 0)
      })
      return RolesRepo.of({ insert, findById, list, update, delete: del })
    }),
  )
}
