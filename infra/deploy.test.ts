// infra/deploy.ts's function-specific keys are keys those functions really read: a key renamed in a Config.ts (or a
// function removed) fails here instead of in a deployment.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { manifests } from "../functions/registry.ts"
import { functionSecrets, functionSettings, plan } from "./deploy.ts"

const configOf = (fn: string) => readFileSync(`functions/${fn}/Config.ts`, "utf8")

describe("the deploy plan", () => {
  it("names only functions of the registry, and only keys their Config.ts reads", () => {
    const names = manifests.map((m) => m.name)
    for (const [fn, specs] of [...Object.entries(functionSecrets), ...Object.entries(functionSettings)]) {
      expect(names).toContain(fn)
      for (const spec of specs) expect(configOf(fn), `${fn} ${spec.key}`).toContain(`"${spec.key}"`)
    }
  })

  it("gives every function the secrets its configuration requires, and a database to all but the gateway", () => {
    for (const fn of plan()) {
      const keys = fn.secrets.map((s) => s.key)
      expect(keys).toEqual(expect.arrayContaining(["SERVICE_KEY", "REDIS_URL"]))
      expect(keys.includes("DATABASE_URL")).toBe(!fn.public)
      if (!fn.public) expect(configOf(fn.name)).toContain("Cfg.database(")
    }
  })
})
