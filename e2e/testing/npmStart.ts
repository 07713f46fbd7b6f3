import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expect } from "vitest"
import { manifests } from "../../functions/registry.ts"
import { embeddedEnv, freePortOffset } from "../../scripts/lib/embedded.ts"
import { type Child, spawnChild } from "../../scripts/lib/processes.ts"
import { eventually } from "../../shared/testing/harness.ts"
import { freePort } from "../../shared/testing/ports.ts"

const ROOT = join(import.meta.dirname, "..", "..")

/** `npm start` as a test runs it: its process, the gateway's URL, and its stop (which removes its data folder). */
export interface NpmStart {
  readonly child: Child
  readonly url: string
  /** `attempt`'s first defined answer, tried every 100 ms; past `timeoutMs` an error with npm start's recent output. */
  waitFor<A>(what: string, attempt: () => Promise<A | undefined>, timeoutMs?: number): Promise<A>
  stop(): Promise<void>
}

/**
 * `npm start` with its embedded defaults (PGlite, dev mailboxes, no real servers) on ports of its own and a fresh data
 * folder, `env` over them; resolves once it says it is up, and every function is ready.
 */
export const startNpmStart = async (env: Readonly<Record<string, string>> = {}): Promise<NpmStart> => {
  const dataDir = mkdtempSync(join(tmpdir(), "npm-start-"))
  // A caller that must know the gateway's address before the start (an OpenID Provider's redirect URI) names the offset.
  const offset = env.PORT_OFFSET === undefined ? await freePortOffset() : Number(env.PORT_OFFSET)
  const gateway = manifests.find((m) => m.name === "gateway")!
  const url = `http://127.0.0.1:${gateway.ports.http + offset}`
  const child = spawnChild({
    name: "npm start",
    args: [join(ROOT, "scripts/start.ts")],
    cwd: ROOT,
    env: embeddedEnv({
      DATA_DIR: dataDir,
      PORT_OFFSET: String(offset),
      EMBEDDED_PG_PORT: String(await freePort()),
      LOG_PRETTY: "false",
      LOG_LEVEL: "warn",
      // Links and upload URLs at the address the tests use: a page at 127.0.0.1 may send only there (the console's CSP).
      APP_BASE_URL: url,
      ...env,
    }),
    tailChars: 64_000,
  })
  const stop = async () => {
    await child.stop(20_000)
    rmSync(dataDir, { recursive: true, force: true })
  }
  try {
    await eventually(
      "npm start",
      async () => {
        if (child.exit !== undefined) throw new Error(`npm start exited:\n${child.output()}`)
        return /up in [\d.]+s/.test(child.output())
      },
      90_000,
    )
    expect(child.output()).not.toMatch(/NOT READY/)
  } catch (error) {
    const output = child.output().slice(-4_000)
    await stop()
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${output}`)
  }
  const waitFor = async <A>(what: string, attempt: () => Promise<A | undefined>, timeoutMs = 20_000): Promise<A> => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const value = await attempt()
      if (value !== undefined) return value
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`${what}: not within ${timeoutMs} ms\n${child.output().slice(-4_000)}`)
  }
  return { child, url, waitFor, stop }
}
