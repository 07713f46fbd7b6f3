import { Schema } from "effect"

/** A user id: a UUID string. */
export const UserId = Schema.String.check(Schema.isUUID(undefined, { message: "must be a UUID" })).pipe(
  Schema.brand("UserId"),
)
export type UserId = typeof UserId.Type

// Lengths count code points and patterns are Unicode, as JSON Schema does: the document states what is enforced.

/** An email address (lower-cased on comparison, kept as typed); `format: email` documents it. */
export const Email = Schema.String.check(
  Schema.isMaxCodePoints(254, { message: "must be at most 254 characters" }),
  Schema.isPattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/u, { message: "must be an email address" }),
).annotate({ format: "email" })

/** A display name. */
export const Name = Schema.String.check(
  Schema.isTrimmed({ message: "must not start or end with spaces" }),
  Schema.isMinCodePoints(1, { message: "must not be empty" }),
  Schema.isMaxCodePoints(100, { message: "must be at most 100 characters" }),
)

/** Account status. */
export const UserStatus = Schema.Literals(["active", "disabled", "deleted"])
export type UserStatus = typeof UserStatus.Type

/** A user as the API shows it. Times are RFC 3339 UTC strings. */
export class User extends Schema.Class<User>("User")({
  id: UserId,
  email: Schema.String,
  name: Schema.String,
  emailVerified: Schema.Boolean,
  status: UserStatus,
  createdAt: Schema.String,
  updatedAt: Schema.String,
}) {}

/** Changes an administrator may make to a user; absent fields stay as they are. */
export const UserChanges = Schema.Struct({
  name: Schema.optional(Name),
  status: Schema.optional(Schema.Literals(["active", "disabled"])),
})
export type UserChanges = typeof UserChanges.Type
