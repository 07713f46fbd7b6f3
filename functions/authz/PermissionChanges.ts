import type { PermissionChangeFeed } from "../../shared/access/Permissions.ts"
import { topicOf } from "../../shared/CloudEvent.ts"
import { manifest } from "./module.ts"

/**
 * The events after which a cached permission answer may be wrong: every role and assignment change authz publishes.
 * Every function that caches authz's answers passes it to `Permissions.following`.
 */
export const permissionChanges: PermissionChangeFeed = {
  topic: topicOf(manifest.name),
  types: manifest.events.publishes.filter(
    (type) => type.startsWith(`${manifest.name}.role.`) || type.startsWith(`${manifest.name}.assignment.`),
  ),
}
