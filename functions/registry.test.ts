import { describe, expect, it } from "vitest"
import { discoverModules, isCurrent } from "../scripts/registry.ts"
import { manifests } from "./registry.ts"

// registry.ts is generated from functions/*/module.ts: a function added without regenerating it fails here, so its
// permissions and events can never be silently unknown to authz and audit.
describe("functions/registry.ts", () => {
  it("lists every function with a module.ts (else: npm run registry)", () => {
    expect(isCurrent(), "functions/registry.ts is stale: run `npm run registry`").toBe(true)
    expect(manifests.map((m) => m.name).sort()).toEqual(discoverModules())
  })
})
