import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { plan } from "../infra/deploy.ts"
import { discover } from "../scripts/build.ts"
import { discoverModules, isCurrent, jobsOfFunction } from "../scripts/registry.ts"
import { registryProblems, startOrder } from "../shared/Module.ts"
import { manifests } from "./registry.ts"

const names = manifests.map((m) => m.name).sort()

// Every file under these folders that is not a test, a manifest or the registry itself.
const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name)
    if (d.isDirectory()) return d.name === "node_modules" ? [] : sources(path)
    if (!d.name.endsWith(".ts") || d.name.endsWith(".test.ts")) return []
    return d.name === "module.ts" || path === join("functions", "registry.ts") ? [] : [path]
  })

// registry.ts is generated from functions/*/module.ts: a function added without regenerating it fails here, so its
// permissions and events can never be silently unknown to authz and audit.
describe("functions/registry.ts", () => {
  it("shows the kernel's retention job on every function with the kernel's tables (the gateway's when it has a database)", () => {
    const defined = manifests.filter((m) => existsSync(join("functions", m.name, "App.ts")))
    for (const m of defined) {
      const prunes = m.migrations.some((migration) => migration.id === "0003_kernel_retention")
      expect(
        m.jobs?.some((job) => job.name === "retention"),
        m.name,
      ).toBe(prunes)
    }
    expect(
      defined
        .filter((m) => m.jobs?.some((job) => job.name === "retention"))
        .map((m) => m.name)
        .sort(),
    ).toEqual(expect.arrayContaining(["audit", "auth", "authz", "gateway", "identity"]))
  })

  it("shows the jobs a function's app runs, with their schedules", async () => {
    const root = mkdtempSync(join(tmpdir(), "registry-jobs-"))
    try {
      mkdirSync(join(root, "chores"))
      writeFileSync(
        join(root, "chores", "App.ts"),
        `export const app = { jobs: {
          "sweep": { schedule: "0 3 * * *", catchUp: true, handler: () => undefined },
          "send": { handler: () => undefined },
        } }`,
      )
      expect(await jobsOfFunction("chores", root)).toEqual([
        { name: "sweep", schedule: "0 3 * * *", catchUp: true },
        { name: "send" },
      ])
      expect(await jobsOfFunction("none", root)).toEqual([])
    } finally {
      rmSync(root, { recursive: true, force: true })
    }
  })

  it("lists every function with a module.ts and its routes (else: npm run registry)", async () => {
    expect(await isCurrent(), "functions/registry.ts is stale: run `npm run registry`").toBe(true)
    expect(manifests.map((m) => m.name).sort()).toEqual(discoverModules())
  })

  // The entries are a convention, not a manifest fact: main.ts always (the container), lambda.ts when the function runs
  // on Lambda too. A folder with an entry but no manifest would be started, bundled or deployed by nothing.
  it("holds every function folder with an entry, and every function of it has a container entry", () => {
    const folders = readdirSync("functions", { withFileTypes: true }).filter((d) => d.isDirectory())
    const withEntry = folders
      .filter((d) => ["main.ts", "lambda.ts"].some((entry) => existsSync(join("functions", d.name, entry))))
      .map((d) => d.name)
    expect(names.filter((n) => !withEntry.includes(n))).toEqual([])
    expect(withEntry.filter((n) => !names.includes(n))).toEqual([])
    for (const n of names) expect(existsSync(join("functions", n, "main.ts")), `functions/${n}/main.ts`).toBe(true)
  })

  it("is the list every script and deployment derives from", () => {
    expect(discover()).toEqual(names) // bundles and images (scripts/build.ts, infra/Dockerfile)
    expect(
      startOrder(manifests)
        .map((m) => m.name)
        .sort(),
    ).toEqual(names) // npm start
    expect(
      plan()
        .map((p) => p.name)
        .sort(),
    ).toEqual(names) // SST and Kubernetes (infra/deploy.ts)
    expect(
      plan()
        .filter((p) => p.public)
        .map((p) => p.name),
    ).toEqual(manifests.filter((m) => m.edge).map((m) => m.name))
  })

  it("gives every port to one function only", () => {
    expect(registryProblems(manifests)).toEqual([])
  })

  // Ports are said once, in the manifests: addresses' defaults are derived (shared/Config.ts), never written again.
  it("has no manifest port written as a literal in the code of functions/, shared/, scripts/ or infra/", () => {
    const ports = manifests.flatMap((m) => Object.values(m.ports).filter((p) => p !== undefined))
    const literal = new RegExp(`\\b(${ports.join("|")})\\b`)
    const files = [
      ...sources("functions"),
      ...sources("shared"),
      ...sources("scripts"),
      ...sources("infra"),
      "sst.config.ts",
    ]
    const found = files.flatMap((file) =>
      readFileSync(file, "utf8")
        .split("\n")
        .flatMap((line, i) => (literal.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : [])),
    )
    expect(found).toEqual([])
  })

  // Permissions and event types are declared once, in the manifests; code names them as literals (Route.requires, an
  // ownership check, outbox.publish, a report counting another function's events). Every such literal in functions/
  // and shared/ is one a manifest declares, so a typo or a renamed permission or event fails here, not in production.
  it("has every permission, event type and topic that code names declared by a manifest", () => {
    const declared = new Set(
      manifests.flatMap((m) => [...m.permissions.map((p) => p.name), ...m.events.publishes, `${m.name}.events`]),
    )
    const named = new RegExp(`["'\`]((?:${names.join("|")})(?:\\.[a-z_]+)+)["'\`]`, "g")
    const files = [...sources("functions"), ...sources("shared")].filter((file) => !file.split("/").includes("testing"))
    const undeclared = files.flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(named)]
        .map((match) => match[1]!)
        .filter((name) => !declared.has(name))
        .map((name) => `${file}: ${name}`),
    )
    expect(undeclared).toEqual([])
    // The test sees them: the names it checks include billing's route permissions and analytics' overview events.
    const billing = readFileSync(join("functions", "billing", "Api.ts"), "utf8")
    expect([...billing.matchAll(named)].map((match) => match[1])).toContain("billing.plan.create")
  })

  // One composition per function: App.ts defines it once (`app`), and the entries only run that definition.
  it("has every function defined once, as App.ts `app`, and entries that only run it", async () => {
    for (const name of names) {
      const { app } = (await import(`./${name}/App.ts`)) as { app?: { manifest: { name: string } } }
      expect(app?.manifest.name, `functions/${name}/App.ts exports app`).toBe(name)
      const code = (file: string) =>
        readFileSync(join("functions", name, file), "utf8")
          .split("\n")
          .filter((line) => line.trim() !== "" && !/^\s*(\/\/|\/\*\*|\*)/.test(line))
      expect(code("main.ts"), `functions/${name}/main.ts`).toEqual([
        'import * as Main from "../../shared/Main.ts"',
        'import { app } from "./App.ts"',
        "Main.run(app)",
      ])
      if (existsSync(join("functions", name, "lambda.ts"))) {
        expect(code("lambda.ts"), `functions/${name}/lambda.ts`).toEqual([
          'import * as Lambda from "../../shared/Lambda.ts"',
          'import { app } from "./App.ts"',
          "export const handler = Lambda.handler(app)",
        ])
      }
    }
  })
})
