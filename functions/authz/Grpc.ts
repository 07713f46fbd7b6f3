import { Effect, Schema } from "effect"
import { AuthzServiceService, type Role as ProtoRole } from "../../proto/gen/authz/v1/authz.ts"
import * as GrpcServer from "../../shared/GrpcServer.ts"
import { decode, Forbidden } from "../../shared/Problem.ts"
import { manifest as identity } from "../identity/module.ts"
import { Administrators } from "./Administrators.ts"
import { Authorizer } from "./Authorizer.ts"
import { PermissionName } from "./Permission.ts"
import { type Role, UserId } from "./Role.ts"
import { Roles } from "./Roles.ts"

// Proto ↔ domain mapping happens here, at the edge, and nowhere else.
const toProto = (role: Role): ProtoRole => ({
  id: role.id,
  name: role.name,
  description: role.description,
  permissions: [...role.permissions],
  builtin: role.builtin,
  createdAt: role.createdAt,
})

const CheckRequest = Schema.Struct({ userId: UserId, permission: PermissionName })
const CheckManyRequest = Schema.Struct({
  userId: UserId,
  permissions: Schema.Array(PermissionName).check(
    Schema.isMaxLength(100, { message: "must hold at most 100 permissions" }),
  ),
})
const UserRequest = Schema.Struct({ userId: UserId })
const UserActiveRequest = Schema.Struct({
  userId: UserId,
  active: Schema.Boolean,
  version: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1, { message: "must be at least 1" })),
})

// More roles than this per user is an administration problem, not a page to fetch.
const MAX_ROLES = 100

/** Authz's gRPC service (authz.v1.AuthzService): permission checks for the gateway and the services. */
export const AuthzGrpc = GrpcServer.service(AuthzServiceService, {
  authorize: (request) =>
    Effect.gen(function* () {
      const { userId, permission } = yield* decode(CheckRequest)(request)
      const decision = yield* (yield* Authorizer).check(userId, permission)
      return { allowed: decision.allowed, grant: decision.grant ?? "" }
    }),
  hasPermission: (request) =>
    Effect.gen(function* () {
      const { userId, permission } = yield* decode(CheckRequest)(request)
      return { allowed: (yield* (yield* Authorizer).check(userId, permission)).allowed }
    }),
  checkPermissions: (request) =>
    Effect.gen(function* () {
      const { userId, permissions } = yield* decode(CheckManyRequest)(request)
      const results = yield* (yield* Authorizer).checkAll(userId, permissions)
      return { results: results.map(({ permission, allowed }) => ({ permission, allowed })) }
    }),
  getUserPermissions: (request) =>
    Effect.gen(function* () {
      const { userId } = yield* decode(UserRequest)(request)
      return { permissions: [...(yield* (yield* Authorizer).grantsOf(userId))] }
    }),
  getUserRoles: (request) =>
    Effect.gen(function* () {
      const { userId } = yield* decode(UserRequest)(request)
      const page = yield* (yield* Roles).rolesOf(userId, { limit: MAX_ROLES })
      return { roles: page.items.map(toProto) }
    }),
  // Only identity knows whether an account is active; any other caller is refused.
  setUserActive: (request, call) =>
    Effect.gen(function* () {
      if (call.caller !== identity.name) {
        return yield* new Forbidden({ detail: "only identity reports the status of accounts" })
      }
      const { userId, active, version } = yield* decode(UserActiveRequest)(request)
      yield* (yield* Administrators).setActive(userId, active, version)
      return {}
    }),
})

/** Everything authz serves over gRPC (loaded by main.ts once HTTP listens). */
export const services = [AuthzGrpc]
