import { Context, Effect, Layer } from "effect"
import { Db, type DbError, UNIQUE_VIOLATION } from "../../shared/Db.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { DEFAULT_LIMIT, decodeTimeCursor, pageOf } from "../../shared/Pagination.ts"
import * as Problem from "../../shared/Problem.ts"
import { Conflict, type LastAdmin, NotFound, type ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { Administrators } from "./Administrators.ts"
import { AssignmentsRepo } from "./AssignmentsRepo.ts"
import { Authorizer } from "./Authorizer.ts"
import { normalize } from "./Permission.ts"
import { PermissionRegistry } from "./PermissionRegistry.ts"
import { ADMIN_ROLE_ID, type NewRole, type Role, type RoleChanges, type RoleId, type UserId } from "./Role.ts"
import { RolesRepo } from "./RolesRepo.ts"

/** A page of a list: `{items, nextCursor}`. */
export interface Page<A> {
  readonly items: Array<A>
  readonly nextCursor: string | null
}

/** Where a list continues: `?limit=&cursor=`. */
export interface PageRequest {
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

/**
 * Roles and user-role assignments. Every change is written with its event (`authz.role.*`, `authz.assignment.*`)
 * in one transaction and, once committed, invalidates the cached permissions of every instance.
 */
export class Roles extends Context.Service<
  Roles,
  {
    /** Creates a role; its grants must cover known permissions (400), its name must be free (409). */
    create(input: NewRole): Effect.Effect<Role, ValidationFailed | Conflict | ServiceUnavailable>
    get(id: RoleId): Effect.Effect<Role, NotFound | ServiceUnavailable>
    /** A page of roles, oldest first. */
    list(page: PageRequest): Effect.Effect<Page<Role>, ValidationFailed | ServiceUnavailable>
    /**
     * Changes a role; the built-in admin role keeps its name and grants (409), and taking `*` from the role of the last
     * active administrator is refused (409 last_admin).
     */
    update(
      id: RoleId,
      changes: RoleChanges,
    ): Effect.Effect<Role, NotFound | ValidationFailed | Conflict | LastAdmin | ServiceUnavailable>
    /**
     * Deletes a role and takes it from its users; the built-in admin role cannot be deleted (409), nor the role of the
     * last active administrator (409 last_admin).
     */
    remove(id: RoleId): Effect.Effect<void, NotFound | Conflict | LastAdmin | ServiceUnavailable>
    /** Gives the user the role (idempotent: an event only when it is new); 404 for an unknown role. */
    assign(userId: UserId, roleId: RoleId): Effect.Effect<void, NotFound | ServiceUnavailable>
    /**
     * Takes the role from the user (idempotent); 404 for an unknown role, 409 last_admin when it is the last active
     * administrator's `*`.
     */
    unassign(userId: UserId, roleId: RoleId): Effect.Effect<void, NotFound | LastAdmin | ServiceUnavailable>
    /** A page of the user's roles, in the order they were given. */
    rolesOf(userId: UserId, page: PageRequest): Effect.Effect<Page<Role>, ValidationFailed | ServiceUnavailable>
    /**
     * Gives the user the built-in admin role inside the caller's transaction (the bootstrap consumer's inbox
     * transaction); true when it is new. The caches go once that transaction commits.
     */
    grantAdmin(userId: UserId): Effect.Effect<boolean, DbError>
  }
>()("authz/Roles") {
  /** Roles over the repositories, the Db (transactions), the outbox, the registry and the authorizer's cache. */
  static readonly layer = Layer.effect(
    Roles,
    Effect.gen(function* () {
      const db = yield* Db
      const roles = yield* RolesRepo
      const assignments = yield* AssignmentsRepo
      const outbox = yield* Outbox
      const registry = yield* PermissionRegistry
      const authorizer = yield* Authorizer
      const administrators = yield* Administrators

      const notFound = (id: string) => new NotFound({ detail: `no role with id ${id}` })
      const nameTaken = new Conflict({ detail: "a role with this name already exists" })
      const builtin = new Conflict({ detail: "the built-in admin role cannot be deleted, renamed or regranted" })

      // Grants are kept sorted and unique; each must cover a permission some function defines.
      const checkGrants = (grants: ReadonlyArray<string>) =>
        Effect.suspend(() => {
          const unknown = new Set(registry.unknown(grants))
          if (unknown.size === 0) return Effect.succeed(normalize(grants))
          return Effect.fail(
            new ValidationFailed({
              detail: "A role may only grant permissions that a function defines",
              errors: grants.flatMap((grant, i) =>
                unknown.has(grant) ? [{ path: `permissions.${i}`, message: `unknown permission ${grant}` }] : [],
              ),
            }),
          )
        })

      const orConflict = (error: DbError): Effect.Effect<never, Conflict | ServiceUnavailable> =>
        error.code === UNIQUE_VIOLATION ? Effect.fail(nameTaken) : unavailable(error)

      const create = Effect.fn("Roles.create")(function* (input: NewRole) {
        const permissions = yield* checkGrants(input.permissions)
        const role = yield* db
          .transaction(
            Effect.gen(function* () {
              const role = yield* roles.insert({ name: input.name, description: input.description ?? "", permissions })
              yield* outbox.publish({
                type: "authz.role.created",
                subject: role.id,
                data: { roleId: role.id, name: role.name, permissions: role.permissions },
              })
              return role
            }),
          )
          .pipe(Effect.catchTag("DbError", orConflict))
        // A new role has no users yet: nothing cached can be stale.
        return role
      })

      const get = Effect.fn("Roles.get")(function* (id: RoleId) {
        const role = yield* roles.findById(id).pipe(Effect.catchTag("DbError", unavailable))
        if (role._tag === "None") return yield* notFound(id)
        return role.value
      })

      const list = Effect.fn("Roles.list")(function* (page: PageRequest) {
        const limit = page.limit ?? DEFAULT_LIMIT
        const after = page.cursor === undefined ? undefined : yield* decodeTimeCursor(page.cursor)
        const rows = yield* roles.list({ limit: limit + 1, after }).pipe(Effect.catchTag("DbError", unavailable))
        return pageOf(rows, limit, (role) => ({ at: role.createdAt, id: role.id }))
      })

      const update = Effect.fn("Roles.update")(function* (id: RoleId, changes: RoleChanges) {
        const permissions = changes.permissions === undefined ? undefined : yield* checkGrants(changes.permissions)
        if (changes.name === undefined && changes.description === undefined && permissions === undefined) {
          return yield* get(id)
        }
        const updated = yield* administrators
          .guard(
            Effect.gen(function* () {
              const before = yield* roles.findById(id)
              if (before._tag === "None") return yield* notFound(id)
              const renamed = changes.name !== undefined && changes.name !== before.value.name
              const regranted = permissions !== undefined && permissions.join() !== before.value.permissions.join()
              if (before.value.builtin && (renamed || regranted)) return yield* builtin
              const after = yield* roles.update(id, { ...changes, permissions })
              if (after._tag === "None") return yield* notFound(id)
              yield* outbox.publish({
                type: "authz.role.updated",
                subject: id,
                data: {
                  roleId: id,
                  name: after.value.name,
                  changes: {
                    ...(renamed ? { name: after.value.name } : {}),
                    ...(changes.description !== undefined ? { description: after.value.description } : {}),
                    ...(regranted ? { permissions: after.value.permissions } : {}),
                  },
                  ...(regranted ? { previousPermissions: before.value.permissions } : {}),
                },
              })
              yield* db.afterCommit(authorizer.invalidate())
              return after.value
            }),
          )
          .pipe(Effect.catchTag("DbError", orConflict))
        return updated
      })

      const remove = Effect.fn("Roles.remove")(function* (id: RoleId) {
        if (id === ADMIN_ROLE_ID) return yield* builtin
        yield* administrators
          .guard(
            Effect.gen(function* () {
              const role = yield* roles.findById(id)
              if (role._tag === "None") return yield* notFound(id)
              if (role.value.builtin) return yield* builtin
              const unassigned = yield* roles.delete(id)
              yield* outbox.publish({
                type: "authz.role.deleted",
                subject: id,
                data: {
                  roleId: id,
                  name: role.value.name,
                  unassignedUsers: unassigned._tag === "Some" ? unassigned.value : 0,
                },
              })
              yield* db.afterCommit(authorizer.invalidate())
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
      })

      // The assignment's event; every instance's cached permissions go once the transaction has committed.
      const assignment = (kind: "created" | "deleted", userId: UserId, role: Role) =>
        Effect.andThen(
          outbox.publish({
            type: `authz.assignment.${kind}`,
            subject: userId,
            data: { userId, roleId: role.id, roleName: role.name },
          }),
          db.afterCommit(authorizer.invalidate()),
        )

      // Gives or takes a user's role, with its event when anything changed; runs in the caller's transaction.
      const change = (kind: "created" | "deleted", userId: UserId, roleId: RoleId) =>
        Effect.gen(function* () {
          const role = yield* roles.findById(roleId)
          if (role._tag === "None") return yield* notFound(roleId)
          const changed = yield* kind === "created"
            ? assignments.assign(userId, roleId)
            : assignments.unassign(userId, roleId)
          if (changed) yield* assignment(kind, userId, role.value)
          return changed
        })

      const assign = Effect.fn("Roles.assign")(function* (userId: UserId, roleId: RoleId) {
        yield* db.transaction(change("created", userId, roleId)).pipe(Effect.catchTag("DbError", unavailable))
      })

      const unassign = Effect.fn("Roles.unassign")(function* (userId: UserId, roleId: RoleId) {
        yield* administrators.guard(change("deleted", userId, roleId)).pipe(Effect.catchTag("DbError", unavailable))
      })

      const rolesOf = Effect.fn("Roles.rolesOf")(function* (userId: UserId, page: PageRequest) {
        const limit = page.limit ?? DEFAULT_LIMIT
        const after = page.cursor === undefined ? undefined : yield* decodeTimeCursor(page.cursor)
        const rows = yield* assignments
          .rolesOf(userId, { limit: limit + 1, after })
          .pipe(Effect.catchTag("DbError", unavailable))
        const listed = pageOf(rows, limit, (row) => ({ at: row.assignedAt, id: row.role.id }))
        return { items: listed.items.map((row) => row.role), nextCursor: listed.nextCursor }
      })

      const grantAdmin = Effect.fn("Roles.grantAdmin")(function* (userId: UserId) {
        return yield* change("created", userId, ADMIN_ROLE_ID).pipe(
          Effect.catchTag("NotFound", () => Effect.die(new Error("the built-in admin role is missing"))),
        )
      })

      return Roles.of({ create, get, list, update, remove, assign, unassign, rolesOf, grantAdmin })
    }),
  )
}

const unavailable = Problem.unavailable("database unavailable", "the role store is unavailable, retry later")
