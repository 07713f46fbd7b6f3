import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { runPlatformFlow } from "../e2e/testing/platformFlow.ts"
import { embeddedEnv } from "../scripts/lib/embedded.ts"
import { spawnChild } from "../scripts/lib/processes.ts"
import { freePort } from "../shared/testing/ports.ts"

// The README's promise: `npm start` brings the platform up with embedded defaults and no external servers.
const dataDir = mkdtempSync(join(tmpdir(), "platform-start-"))
const adminEmail = "first-admin@example.com"
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

describe("npm start (embedded defaults)", () => {
  it("starts every function on PGlite, serves it, and stops cleanly on SIGINT", async () => {
    const env = embeddedEnv({
      DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: "54391",
      LOG_PRETTY: "false",
      BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    })
    const child = spawnChild({ name: "npm start", args: ["scripts/start.ts"], env, tailChars: 1_000_000 })
    const output = () => child.output()
    try {
      const deadline = Date.now() + 60_000
      while (!/up in [\d.]+s/.test(output())) {
        if (Date.now() > deadline || child.exit !== undefined)
          throw new Error(`npm start did not come up:\n${output()}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(output()).toMatch(/embedded Postgres \(PGlite\)/)
      expect(output()).not.toMatch(/NOT READY/)
      const ready = await fetch("http://127.0.0.1:8082/readyz")
      expect(ready.status).toBe(200)
      // Zero trust: the service itself refuses an admin route without a token, gateway or not.
      const refused = await fetch("http://127.0.0.1:8082/api/v1/users/0195a0a0-0000-7000-8000-000000000000")
      expect(refused.status).toBe(401)
      expect(refused.headers.get("content-type")).toBe("application/problem+json")
      const mailbox = await fetch("http://127.0.0.1:8082/_dev/mail")
      expect(mailbox.status).toBe(200)
      expect(await mailbox.json()).toEqual({ items: [] })
      // Every function's recent error reports, merged at the gateway: each one answers from the shared process.
      const errors = await fetch("http://127.0.0.1:8080/_dev/errors")
      expect(errors.status).toBe(200)
      expect(await errors.json()).toEqual({ items: [], unreachable: [] })

      // Every function's dev mailbox, merged at the gateway (identity's and billing's; the others have none).
      const mails = await fetch("http://127.0.0.1:8080/_dev/mail")
      expect(mails.status).toBe(200)
      expect(await mails.json()).toEqual({ items: [], unreachable: [] })

      // The platform's main story through the gateway, on the embedded defaults (PGlite, memory caches, the
      // Postgres-backed bus, the dev mailboxes), billing's receipts read in the gateway's merged mailbox.
      const mailText = async (email: string) => {
        const deadline = Date.now() + 20_000
        while (Date.now() < deadline) {
          const { items } = (await (await fetch("http://127.0.0.1:8080/_dev/mail")).json()) as {
            items: Array<{ to: string; text: string }>
          }
          // Newest first: the newest mail to the address.
          const mail = items.find((m) => m.to.includes(email))
          if (mail) return mail.text
          await new Promise((r) => setTimeout(r, 50))
        }
        throw new Error(`no mail to ${email} in the dev mailbox`)
      }
      await runPlatformFlow({ url: "http://127.0.0.1:8080", adminEmail, mailText })
    } finally {
      child.process.kill("SIGINT")
    }
    expect((await child.exited).code).toBe(0)
    const upIn = /up in ([\d.]+)s/.exec(output())?.[1]
    console.log(`npm start: ready in ${upIn} s`)
    expect(output()).toMatch(/stopped/)
  }, 150_000)
})

describe("npm start -- --processes", () => {
  it("runs every function as its own process, each ready on its own port, and stops them all on SIGINT", async () => {
    const data = mkdtempSync(join(tmpdir(), "platform-processes-"))
    const env = embeddedEnv({
      DATA_DIR: data,
      EMBEDDED_PG_PORT: String(await freePort()),
      PORT_OFFSET: "900",
      LOG_PRETTY: "false",
    })
    const child = spawnChild({
      name: "npm start --processes",
      args: ["scripts/start.ts", "--processes"],
      env,
      tailChars: 1_000_000,
    })
    try {
      const deadline = Date.now() + 90_000
      while (!/up in [\d.]+s/.test(child.output())) {
        if (Date.now() > deadline || child.exit !== undefined) {
          throw new Error(`npm start --processes did not come up:\n${child.output()}`)
        }
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(child.output()).not.toMatch(/NOT READY/)
      // One process per function: each function's lines carry its own label.
      for (const name of ["gateway", "auth", "identity", "authz", "audit"]) expect(child.output()).toContain(`${name} `)
      expect((await fetch("http://127.0.0.1:8982/readyz")).status).toBe(200)
      // Every function's recent error reports, merged at the gateway from each process's own listing.
      const errors = await fetch("http://127.0.0.1:8980/_dev/errors")
      expect(errors.status).toBe(200)
      expect(await errors.json()).toEqual({ items: [], unreachable: [] })
    } finally {
      child.process.kill("SIGINT")
      await child.exited
      rmSync(data, { recursive: true, force: true })
    }
    expect(child.exit?.code).toBe(0)
    expect(child.output()).toMatch(/stopped/)
  }, 150_000)
})
