import { Schema } from "effect"
import { PERMISSION } from "../../shared/Module.ts"

export { covers, matchingGrant } from "./Covers.ts"

/** The shape of a permission: `{module}.{resource}.{action}`, the manifests' rule (shared/Module.ts). */
const PERMISSION_PATTERN = new RegExp(PERMISSION.source, "u")

// A grant: `*`, a permission, or a permission prefix with a trailing wildcard (`blog.*`); the document states it.
const GRANT_PATTERN = new RegExp(`^(?:\\*|${PERMISSION.source.slice(1, -1)}(?:\\.\\*)?)$`, "u")

/** A concrete permission, e.g. `blog.post.create` (what routes require and checks ask about). */
export const PermissionName = Schema.String.check(
  Schema.isMaxCodePoints(200, { message: "must be at most 200 characters" }),
  Schema.isPattern(PERMISSION_PATTERN, { message: "must look like module.resource.action (a-z, 0-9, dots)" }),
)

/** A grant a role holds: a concrete permission, a trailing wildcard (`blog.*`, `blog.post.*`) or `*` (everything). */
export const Grant = Schema.String.check(
  Schema.isMaxCodePoints(200, { message: "must be at most 200 characters" }),
  Schema.isPattern(GRANT_PATTERN, { message: "must be a permission, a trailing wildcard (blog.*) or *" }),
)

/** True for a syntactically valid grant (see `Grant`). */
export const isGrant = (value: string): boolean => GRANT_PATTERN.test(value)

/** Sorted, without duplicates: the canonical form of a set of grants. */
export const normalize = (grants: Iterable<string>): Array<string> => [...new Set(grants)].sort()
