import { describe, expect, it } from "vitest"
import { topicOf } from "../../shared/CloudEvent.ts"
import { manifest } from "./module.ts"
import { permissionChanges } from "./PermissionChanges.ts"

describe("authz's permission changes", () => {
  it("are every role and assignment event authz publishes, on its own topic", () => {
    expect(permissionChanges.topic).toBe(topicOf(manifest.name))
    expect(permissionChanges.types).toEqual([
      "authz.role.created",
      "authz.role.updated",
      "authz.role.deleted",
      "authz.assignment.created",
      "authz.assignment.deleted",
    ])
    for (const type of permissionChanges.types) expect(manifest.events.publishes).toContain(type)
  })
})
