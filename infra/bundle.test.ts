// The bundle of a function runs on plain Node with nothing installed: no node_modules, only main.mjs (and the
// native addons it requires, copied next to it by the build).
import { type ChildProcess, spawn } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { build } from "../scripts/build.ts"
import { freePort } from "../shared/testing/ports.ts"

const SHUTDOWN_TIMEOUT_MS = 5_000

// Resolves the status of GET url, or 0 when nothing answers yet.
const status = async (url: string): Promise<number> => {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) })
    await response.body?.cancel()
    return response.status
  } catch {
    return 0
  }
}

const exited = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null)
      resolve({ code: child.exitCode, signal: child.signalCode })
    else child.once("exit", (code, signal) => resolve({ code, signal }))
  })

// Env of a plain `node main.mjs`: no flags or loaders inherited from the test runner.
const plainEnv = (overrides: Record<string, string | undefined>) => {
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, ...overrides }
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
  return env as Record<string, string>
}

const hasNodeModulesAbove = (dir: string): boolean =>
  existsSync(join(dir, "node_modules")) || (dirname(dir) !== dir && hasNodeModulesAbove(dirname(dir)))

describe("identity bundle", () => {
  let buildDir = ""
  let runDir = ""
  const children: Array<ChildProcess> = []

  const start = (env: Record<string, string | undefined>) => {
    const child = spawn(process.execPath, ["main.mjs"], {
      cwd: runDir,
      env: plainEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    })
    children.push(child)
    const output = { stdout: "", stderr: "" }
    child.stdout?.on("data", (chunk: Buffer) => (output.stdout += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (output.stderr += chunk.toString()))
    return { child, output }
  }

  beforeAll(async () => {
    buildDir = mkdtempSync(join(tmpdir(), "bundle-build-"))
    runDir = mkdtempSync(join(tmpdir(), "bundle-run-"))
    await build(["identity"], { outdir: buildDir })
    // What the image ships: the entry, the chunks it loads on demand, its native addons.
    cpSync(join(buildDir, "identity"), runDir, {
      recursive: true,
      filter: (source) => !/(\.map|meta\.json|lambda\.mjs)$/.test(source) && !source.includes("/chunks/lambda-"),
    })
  })

  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    for (const dir of [buildDir, runDir]) if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it("runs alone in an empty folder: live, ready, and exits 0 on SIGTERM within the shutdown timeout", async () => {
    expect(readdirSync(runDir).filter((f) => !f.endsWith(".node"))).toEqual(["chunks", "main.mjs"])
    expect(hasNodeModulesAbove(runDir)).toBe(false)
    const databaseUrl = process.env.DATABASE_URL
    expect(databaseUrl, "DATABASE_URL (from .env.test via the global setup)").toBeTruthy()

    const port = await freePort()
    const { child, output } = start({
      DATABASE_URL: databaseUrl,
      HTTP_PORT: String(port),
      GRPC_PORT: String(await freePort()),
      NODE_ENV: "production",
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    })
    const base = `http://127.0.0.1:${port}`
    const deadline = Date.now() + 20_000
    while ((await status(`${base}/healthz`)) !== 200) {
      if (child.exitCode !== null)
        throw new Error(`bundle exited (${child.exitCode}): ${output.stderr}${output.stdout}`)
      if (Date.now() > deadline) throw new Error(`no 200 on /healthz after 20 s: ${output.stderr}${output.stdout}`)
      await sleep(25)
    }
    expect(await status(`${base}/readyz`)).toBe(200)

    const stopping = Date.now()
    child.kill("SIGTERM")
    const exit = await Promise.race([exited(child), sleep(SHUTDOWN_TIMEOUT_MS + 2_000, "timeout" as const)])
    expect(exit, `exit after SIGTERM; stderr: ${output.stderr}`).toEqual({ code: 0, signal: null })
    expect(Date.now() - stopping).toBeLessThan(SHUTDOWN_TIMEOUT_MS)
  })

  it("reports every configuration problem at once and exits non-zero", async () => {
    const { child, output } = start({ DATABASE_URL: undefined, HTTP_PORT: "not-a-port", NODE_ENV: "production" })
    const exit = await Promise.race([exited(child), sleep(15_000, "timeout" as const)])
    expect(exit).not.toBe("timeout")
    expect(exit).not.toEqual({ code: 0, signal: null })
    expect(output.stderr).toMatch(/DATABASE_URL: missing/)
    expect(output.stderr).toMatch(/HTTP_PORT: /)
  })
})
