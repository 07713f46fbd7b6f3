import { Effect, Layer, Option, Schema } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { DEFAULT_LIMIT, decodeCursor, pageOf } from "../../shared/Pagination.ts"
import { validationProblems } from "../../shared/Server.ts"
import { AuthzApi } from "./Api.ts"
import { Authorizer } from "./Authorizer.ts"
import { PermissionRegistry } from "./PermissionRegistry.ts"
import { UserId } from "./Role.ts"
import { Roles } from "./Roles.ts"

const decodeUserId = Schema.decodeUnknownOption(UserId)

/** Handlers of the me group: the signed-in caller's own grants. */
export const MeHttp = HttpApiBuilder.group(
  AuthzApi,
  "me",
  Effect.fn(function* (handlers) {
    const authorizer = yield* Authorizer
    return handlers.handle("permissions", () =>
      Effect.gen(function* () {
        // A subject that is no user id here (not identity's) cannot hold roles.
        const userId = decodeUserId((yield* CurrentUser).userId)
        if (Option.isNone(userId)) return { items: [] }
        return { items: [...(yield* authorizer.grantsOf(userId.value))] }
      }),
    )
  }),
)

/** Handlers of the permission registry (sorted by name, paged by name). */
export const PermissionsHttp = HttpApiBuilder.group(
  AuthzApi,
  "permissions",
  Effect.fn(function* (handlers) {
    const registry = yield* PermissionRegistry
    return handlers.handle("list", ({ query }) =>
      Effect.gen(function* () {
        const limit = query.limit ?? DEFAULT_LIMIT
        const after = query.cursor === undefined ? undefined : yield* decodeCursor(query.cursor)
        const rest = after === undefined ? registry.all : registry.all.filter((p) => p.name > after.at)
        return pageOf(rest.slice(0, limit + 1), limit, (p) => ({ at: p.name, id: p.name }))
      }),
    )
  }),
)

/** Handlers of the roles group. */
export const RolesHttp = HttpApiBuilder.group(
  AuthzApi,
  "roles",
  Effect.fn(function* (handlers) {
    const roles = yield* Roles
    return handlers
      .handle("create", ({ payload }) => roles.create(payload))
      .handle("list", ({ query }) => roles.list(query))
      .handle("get", ({ params }) => roles.get(params.id))
      .handle("update", ({ params, payload }) => roles.update(params.id, payload))
      .handle("delete", ({ params }) => roles.remove(params.id))
  }),
)

/** Handlers of the assignments group. */
export const AssignmentsHttp = HttpApiBuilder.group(
  AuthzApi,
  "assignments",
  Effect.fn(function* (handlers) {
    const roles = yield* Roles
    return handlers
      .handle("list", ({ params, query }) => roles.rolesOf(params.userId, query))
      .handle("assign", ({ params }) => roles.assign(params.userId, params.roleId))
      .handle("unassign", ({ params }) => roles.unassign(params.userId, params.roleId))
  }),
)

/** Authz's HTTP routes, ready to serve; needs `Roles`, `Authorizer`, the registry and `Authentication`. */
export const HttpLive = HttpApiBuilder.layer(AuthzApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([MeHttp, PermissionsHttp, RolesHttp, AssignmentsHttp]),
  Layer.provide(validationProblems),
)
