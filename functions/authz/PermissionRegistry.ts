import { Context, Layer } from "effect"
import type { ModuleManifest } from "../../shared/Module.ts"
import { manifests } from "../registry.ts"
import { covers } from "./Permission.ts"

/** A permission some function defines, as `GET /api/v1/permissions` lists it. */
export interface PermissionInfo {
  readonly name: string
  readonly description: string
  /** The function that defines it. */
  readonly module: string
}

/**
 * The permissions every function defines, read from the manifests (`functions/registry.ts`, generated from
 * functions/*\/module.ts): a new function's permissions are known here without hand edits.
 */
export class PermissionRegistry extends Context.Service<
  PermissionRegistry,
  {
    /** Every known permission, sorted by name. */
    readonly all: ReadonlyArray<PermissionInfo>
    /** The grants that cover no known permission (a concrete one nobody defines, a wildcard matching nothing). */
    unknown(grants: ReadonlyArray<string>): Array<string>
  }
>()("authz/PermissionRegistry") {
  /** The registry over these manifests (tests use their own). */
  static readonly fromManifests = (from: ReadonlyArray<Pick<ModuleManifest, "name" | "permissions">>) =>
    Layer.sync(PermissionRegistry, () => {
      const all = from
        .flatMap((m) => m.permissions.map((p) => ({ name: p.name, description: p.description, module: m.name })))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      const names = new Set(all.map((p) => p.name))
      const known = (grant: string) =>
        grant === "*" || names.has(grant) || (grant.endsWith(".*") && all.some((p) => covers(grant, p.name)))
      return PermissionRegistry.of({ all, unknown: (grants) => grants.filter((g) => !known(g)) })
    })

  /** The registry of every function in this repository. */
  static readonly layer = PermissionRegistry.fromManifests(manifests)
}
