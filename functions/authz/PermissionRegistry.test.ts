import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { manifests } from "../registry.ts"
import { PermissionRegistry } from "./PermissionRegistry.ts"

describe("the permission registry", () => {
  it("the registry holds every permission every manifest defines, authz's own included", () => {
    const registry = Effect.runSync(Effect.service(PermissionRegistry).pipe(Effect.provide(PermissionRegistry.layer)))
    const names = registry.all.map((p) => p.name)
    for (const m of manifests) for (const p of m.permissions) expect(names).toContain(p.name)
    expect(names).toEqual(
      expect.arrayContaining([
        "authz.permission.read",
        "authz.role.create",
        "authz.role.read",
        "authz.role.update",
        "authz.role.delete",
        "authz.assignment.create",
        "authz.assignment.read",
        "authz.assignment.delete",
        "identity.user.read",
      ]),
    )
  })
})
