// infra/deploy.ts's function-specific keys are keys those functions really read: a key renamed in a Config.ts (or a
// function removed) fails here instead of in a deployment.
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { manifests } from "../functions/registry.ts"
import { defineRegistry, type ModuleManifest } from "../shared/Module.ts"
import { functionHeap, functionHeapOptions, functionSecrets, functionSettings, plan } from "./deploy.ts"

// A function's Config.ts, with the kernel's config modules it spreads (`...BlobStore.config()` reads the S3 keys).
const kernelConfigs = { "BlobStore.config(": "shared/BlobStore.ts" } as const
const configOf = (fn: string) => {
  const own = readFileSync(`functions/${fn}/Config.ts`, "utf8")
  const spread = Object.entries(kernelConfigs).filter(([call]) => own.includes(call))
  return [own, ...spread.map(([, file]) => readFileSync(file, "utf8"))].join("\n")
}

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

  // Nothing is special-cased by function name: a new function's secrets and settings are in its own manifest.
  it("takes a function's secrets and settings from its manifest, and the edge from `edge`", () => {
    const fn = (m: Partial<ModuleManifest> & Pick<ModuleManifest, "name" | "ports">): ModuleManifest => ({
      version: "1.0.0",
      description: "test",
      dependsOn: [],
      routes: [],
      permissions: [],
      events: { publishes: [], consumes: [] },
      migrations: [],
      ...m,
    })
    const stripe = { key: "STRIPE_API_KEY", required: true, description: "Stripe's secret key" }
    const billing = fn({
      name: "billing",
      ports: { http: 8092 },
      routes: [{ method: "GET", path: "/api/v1/invoices", auth: "user" }],
      secrets: [stripe],
      settings: [{ key: "BILLING_CURRENCY", description: "ISO 4217 code" }],
    })
    const front = fn({ name: "front", ports: { http: 8080 }, edge: true })
    const [planned, edge] = plan(defineRegistry([billing, front]))
    expect(planned?.secrets.map((s) => s.key)).toEqual([
      "SERVICE_KEY",
      "REDIS_URL",
      "SENTRY_DSN",
      "DATABASE_URL",
      "STRIPE_API_KEY",
    ])
    expect(planned?.public).toBe(false)
    expect(edge?.secrets.map((s) => s.key)).toEqual(["SERVICE_KEY", "REDIS_URL", "SENTRY_DSN"])
    expect([edge?.public, edge?.peers.map((p) => p.key)]).toEqual([true, ["BILLING_URL"]])
    expect(functionSecrets).toEqual(
      Object.fromEntries(manifests.flatMap((m) => (m.secrets ? [[m.name, m.secrets]] : []))),
    )
    expect(functionSettings).toEqual(
      Object.fromEntries(manifests.flatMap((m) => (m.settings ? [[m.name, m.settings]] : []))),
    )
  })

  // The heap bounds are declared once (deploy.ts); the image, which Kubernetes and SST run, carries exactly those.
  it("gives the image the functions' heap bounds as declared, within the containers' memory", () => {
    const dockerfile = readFileSync("infra/Dockerfile", "utf8")
    const declared = /^ARG NODE_HEAP_OPTIONS="([^"]*)"$/m.exec(dockerfile)?.[1]
    expect(declared).toBe(functionHeapOptions)
    const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "))
    expect(runtime).toMatch(/^ARG NODE_HEAP_OPTIONS$/m)
    expect(runtime).toMatch(/^ENV .*NODE_OPTIONS="\$\{NODE_HEAP_OPTIONS\}"/m)
    // Kubernetes' limit (scripts/k8s.ts) and SST's default task memory are 512 MiB: the old space, the young
    // generation (2 semi-spaces) and what Node holds outside the heap (≈ 100 MiB measured) fit under it.
    const k8s = readFileSync("scripts/k8s.ts", "utf8")
    expect(k8s).toContain('limits: { cpu: "1", memory: "512Mi"')
    expect(functionHeap.maxOldSpaceMiB + 2 * functionHeap.maxSemiSpaceMiB + 128).toBeLessThanOrEqual(512)
  })
})
