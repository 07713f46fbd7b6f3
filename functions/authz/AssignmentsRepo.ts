import { Context, Effect, Layer } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import type { Position } from "../../shared/Pagination.ts"
import type { Role, RoleId, UserId } from "./Role.ts"
import { type RoleRow, toRole } from "./RolesRepo.ts"

/** A role as assigned to a user: the role and when it was given. */
export interface Assigned {
  readonly role: Role
  readonly assignedAt: string
}

/** SQL access to authz's user-role assignments. */
export class AssignmentsRepo extends Context.Service<
  AssignmentsRepo,
  {
    /** Gives the user the role; false when they already had it. */
    assign(userId: UserId, roleId: RoleId): Effect.Effect<boolean, DbError>
    /** Takes the role from the user; false when they did not have it. */
    unassign(userId: UserId, roleId: RoleId): Effect.Effect<boolean, DbError>
    /** One page of the user's roles in the order they were given (keyset: assigned at, role id). */
    rolesOf(
      userId: UserId,
      options: { readonly limit: number; readonly after?: Position | undefined },
    ): Effect.Effect<Array<Assigned>, DbError>
    /** Every grant of every role of the user (duplicates possible). */
    grantsOf(userId: UserId): Effect.Effect<Array<string>, DbError>
  }
>()("authz/AssignmentsRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    AssignmentsRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const assign = Effect.fn("AssignmentsRepo.assign")(function* (userId: UserId, roleId: RoleId) {
        const rows = yield* db.query(
          `INSERT INTO ${db.schema}.user_roles (user_id, role_id) VALUES ($1, $2)
           ON CONFLICT DO NOTHING RETURNING role_id`,
          [userId, roleId],
        )
        return rows.length > 0
      })
      const unassign = Effect.fn("AssignmentsRepo.unassign")(function* (userId: UserId, roleId: RoleId) {
        const rows = yield* db.query(
          `DELETE FROM ${db.schema}.user_roles WHERE user_id = $1 AND role_id = $2 RETURNING role_id`,
          [userId, roleId],
        )
        return rows.length > 0
      })
      const rolesOf = Effect.fn("AssignmentsRepo.rolesOf")(function* (
        userId: UserId,
        options: { readonly limit: number; readonly after?: Position | undefined },
      ) {
        const rows = yield* db.query<RoleRow & { assigned_at: Date }>(
          `SELECT r.*, ur.created_at AS assigned_at
           FROM ${db.schema}.user_roles ur JOIN ${db.schema}.roles r ON r.id = ur.role_id
           WHERE ur.user_id = $1
             AND ($2::timestamptz IS NULL OR (ur.created_at, ur.role_id) > ($2::timestamptz, $3::uuid))
           ORDER BY ur.created_at, ur.role_id LIMIT $4`,
          [userId, options.after?.at ?? null, options.after?.id ?? null, options.limit],
        )
        return rows.map((row) => ({ role: toRole(row), assignedAt: row.assigned_at.toISOString() }))
      })
      const grantsOf = Effect.fn("AssignmentsRepo.grantsOf")(function* (userId: UserId) {
        const rows = yield* db.query<{ grant: string }>(
          `SELECT DISTINCT unnest(r.permissions) AS grant
           FROM ${db.schema}.user_roles ur JOIN ${db.schema}.roles r ON r.id = ur.role_id
           WHERE ur.user_id = $1`,
          [userId],
        )
        return rows.map((row) => row.grant)
      })
      return AssignmentsRepo.of({ assign, unassign, rolesOf, grantsOf })
    }),
  )
}
