import { execFileSync } from "node:child_process"
import { copyFileSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

const ROOT = resolve(import.meta.dirname, "..")
const NAME = "scaffolded-demo"

// "A new function is one folder and one command", proven in a temporary clone of the committed tree: generate (its
// folder, the registry and the typed client), then what CI runs on any change (lint, type check, bundle), then the new
// function's own test on the real Postgres and the client's currency check.
describe("npm run new:function", () => {
  const clone = mkdtempSync(join(tmpdir(), "new-function-"))
  afterAll(() => rmSync(clone, { recursive: true, force: true }))
  const run = (command: string, args: ReadonlyArray<string>) =>
    execFileSync(command, args, { cwd: clone, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: process.env })

  it("makes a function that lints, type checks, bundles and passes its test, changing nothing outside its folder", () => {
    execFileSync("git", ["clone", "--quiet", "--no-hardlinks", ROOT, clone])
    // The client workspace has its own node_modules (openapi-typescript beside TypeScript 5, which it needs).
    for (const dir of ["", "client"])
      symlinkSync(join(ROOT, dir, "node_modules"), join(clone, dir, "node_modules"), "dir")

    run("node", ["scripts/new-function.ts", NAME])
    const changed = run("git", ["status", "--porcelain", "--untracked-files=all"])
      .split("\n")
      .filter(Boolean)
      .map((line) => line.slice(3))
      // The clone's node_modules are symlinks to this checkout's (no install): not changes.
      .filter((path) => path !== "node_modules" && path !== "client/node_modules")
    // Outside its folder: the registry, the typed client (its routes are in the platform's document) and the compose
    // services (rendered from the plan).
    expect(changed.filter((path) => !path.startsWith(`functions/${NAME}/`)).sort()).toEqual([
      "client/openapi.json",
      "client/openapi.ts",
      "functions/registry.ts",
      "infra/docker-compose.functions.yml",
    ])
    expect(changed).toContain(`functions/${NAME}/module.ts`)

    run("npx", ["biome", "check", "."])
    run("npx", ["tsc", "-p", ".", "--noEmit"])
    expect(run("node", ["scripts/build.ts", NAME])).toContain(`built 1 function(s)`)
    expect(run("node", ["scripts/registry.ts", "--check"])).toBe("")
    // The servers this run already started (infra/up.sh): the clone's tests use them as they are.
    copyFileSync(join(ROOT, ".env.test"), join(clone, ".env.test"))
    const tested = execFileSync("npx", ["vitest", "run", `functions/${NAME}`, "--reporter=dot"], {
      cwd: clone,
      encoding: "utf8",
      env: { ...process.env, SKIP_INFRA: "1", NO_COLOR: "1", FORCE_COLOR: "0" },
    })
    expect(tested).toMatch(/Tests\s+3 passed/)
    // The client is current with the new function's routes.
    const current = execFileSync("npx", ["vitest", "run", "client/generated.test.ts", "--reporter=dot"], {
      cwd: clone,
      encoding: "utf8",
      env: { ...process.env, SKIP_INFRA: "1", NO_COLOR: "1", FORCE_COLOR: "0" },
    })
    expect(current).toMatch(/Tests\s+1 passed/)
    // So is the compose file: the new function has its service.
    const composed = execFileSync(
      "npx",
      ["vitest", "run", "infra/compose.test.ts", "-t", "is what scripts/compose.ts renders", "--reporter=dot"],
      { cwd: clone, encoding: "utf8", env: { ...process.env, SKIP_INFRA: "1", NO_COLOR: "1", FORCE_COLOR: "0" } },
    )
    expect(composed).toMatch(/Tests\s+1 passed/)
    expect(readFileSync(join(clone, "infra/docker-compose.functions.yml"), "utf8")).toContain(`  ${NAME}:`)
  }, 300_000)
})
