import { Schema } from "effect"
import { Grant } from "./Permission.ts"

/** A role id: a UUID. */
export const RoleId = Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" })).pipe(
  Schema.brand("RoleId"),
)
export type RoleId = typeof RoleId.Type

/** A user id (identity's, the access token's `sub`): a UUID. */
export const UserId = Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" })).pipe(
  Schema.brand("UserId"),
)
export type UserId = typeof UserId.Type

/** The id of the built-in `admin` role (`*`), created by migration 0200. */
export const ADMIN_ROLE_ID = "00000000-0000-4000-8000-00000000ad01" as RoleId

/** A role name: a lower-case slug, unique (case-insensitively). */
export const RoleName = Schema.String.check(
  Schema.isMinCodePoints(1, { message: "must not be empty" }),
  Schema.isMaxCodePoints(64, { message: "must be at most 64 characters" }),
  Schema.isPattern(/^[a-z0-9]+([_-][a-z0-9]+)*$/u, { message: "must be a lower-case slug (a-z, 0-9, - and _)" }),
)

/** What a role is for, for administrators. */
export const Description = Schema.String.check(
  Schema.isMaxCodePoints(500, { message: "must be at most 500 characters" }),
)

/** The grants of a role: at most 200, each a permission, a trailing wildcard or `*`. */
export const Grants = Schema.Array(Grant).check(Schema.isMaxLength(200, { message: "must hold at most 200 grants" }))

/** A role as the API shows it. `builtin` roles cannot be deleted, renamed or have their grants changed. */
export class Role extends Schema.Class<Role>("Role")({
  id: RoleId,
  name: Schema.String,
  description: Schema.String,
  permissions: Schema.Array(Schema.String),
  builtin: Schema.Boolean,
  createdAt: Schema.String,
  updatedAt: Schema.String,
}) {}

/** A new role. */
export const NewRole = Schema.Struct({
  name: RoleName,
  description: Schema.optional(Description),
  permissions: Grants,
})
export type NewRole = typeof NewRole.Type

/** Changes to a role; absent fields stay as they are, `permissions` replaces the whole set. */
export const RoleChanges = Schema.Struct({
  name: Schema.optional(RoleName),
  description: Schema.optional(Description),
  permissions: Schema.optional(Grants),
})
export type RoleChanges = typeof RoleChanges.Type
