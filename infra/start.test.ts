import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"

// The README's promise: `npm start` brings the platform up with embedded defaults and no external servers.
const dataDir = mkdtempSync(join(tmpdir(), "platform-start-"))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

describe("npm start (embedded defaults)", () => {
  it("starts every function on PGlite, serves it, and stops cleanly on SIGINT", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, EMBEDDED_PG_PORT: "54391", LOG_PRETTY: "false" }
    for (const key of ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "S3_ENDPOINT", "S3_BUCKET", "SMTP_URL"])
      delete env[key]
    const child = spawn(process.execPath, ["scripts/start.ts"], { env, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (chunk) => {
      output += chunk
    })
    child.stderr.on("data", (chunk) => {
      output += chunk
    })
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    try {
      const deadline = Date.now() + 60_000
      while (!/up in [\d.]+s/.test(output)) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`npm start did not come up:\n${output}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(output).toMatch(/embedded Postgres \(PGlite\)/)
      expect(output).not.toMatch(/NOT READY/)
      const ready = await fetch("http://127.0.0.1:8082/readyz")
      expect(ready.status).toBe(200)
      const missing = await fetch("http://127.0.0.1:8082/api/v1/users/0195a0a0-0000-7000-8000-000000000000")
      expect(missing.status).toBe(404)
      expect(missing.headers.get("content-type")).toBe("application/problem+json")
      const mailbox = await fetch("http://127.0.0.1:8082/_dev/mail")
      expect(mailbox.status).toBe(200)
      expect(await mailbox.json()).toEqual({ items: [] })

      // Sign-up to sign-out across the auth and identity processes, on the embedded bus and memory caches.
      const json = (body: unknown, token?: string) => ({
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      })
      const email = "newcomer@example.com"
      const password = "correct horse battery"
      const registered = await fetch("http://127.0.0.1:8081/api/v1/auth/register", json({ email, password, name: "N" }))
      expect(registered.status).toBe(201)
      const login = await fetch("http://127.0.0.1:8081/api/v1/auth/login", json({ email, password }))
      expect(login.status).toBe(200)
      const tokens = (await login.json()) as { access_token: string; refresh_token: string }
      const me = () =>
        fetch("http://127.0.0.1:8082/api/v1/users/me", { headers: { authorization: `Bearer ${tokens.access_token}` } })
      expect(((await (await me()).json()) as { email: string }).email).toBe(email)
      const out = await fetch("http://127.0.0.1:8081/api/v1/auth/logout", json({ refresh_token: tokens.refresh_token }))
      expect(out.status).toBe(204)
      const loggedOut = Date.now()
      while ((await me()).status !== 401) {
        if (Date.now() - loggedOut > 1_000) throw new Error("identity still accepts the token 1 s after logout")
        await new Promise((r) => setTimeout(r, 50))
      }
    } finally {
      child.kill("SIGINT")
    }
    expect(await exited).toBe(0)
    expect(output).toMatch(/stopped/)
  }, 90_000)
})
