import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mailText as mailTextOf, type Platform, startPlatform } from "../../shared/testing/platform.ts"
import { platformClient, runPlatformFlow } from "../../shared/testing/platformFlow.ts"

// The whole platform as separate processes on the real Postgres, Redis and an SMTP server, used only through the
// gateway, as a client would.
const adminEmail = `admin-${randomUUID().slice(0, 8)}@example.com`
let platform: Platform
beforeAll(async () => {
  platform = await startPlatform({
    // The load test below is one client hammering one route: the default limits are not what it measures.
    env: { BOOTSTRAP_ADMIN_EMAIL: adminEmail, RATE_LIMIT_USER_PER_MINUTE: "0", RATE_LIMIT_IP_PER_MINUTE: "0" },
  })
}, 180_000)
afterAll(() => platform?.stop(), 60_000)

// The newest mail to `email` the SMTP server received.
const mailText = (email: string) => mailTextOf(platform, email)

describe("the platform end to end, through the gateway", () => {
  it("sign-up to sign-out: roles granted and revoked within 1 s, logout refused at once, all of it audited", async () => {
    await runPlatformFlow({ url: platform.url, adminEmail, mailText })
    expect(platform.smtp.mails.length).toBeGreaterThanOrEqual(2)
  }, 120_000)

  it("a service killed under load: 503 problem+json within the timeout, never a hang; back once it returns", async () => {
    const client = platformClient({ url: platform.url, adminEmail, mailText })
    const user = await client.signUp(`load-${randomUUID().slice(0, 8)}@example.com`)
    const answers: Array<{ status: number; ms: number; problem: boolean }> = []
    let running = true
    const load = Array.from({ length: 6 }, async () => {
      while (running) {
        const started = Date.now()
        const res = await fetch(`${platform.url}/api/v1/users/me`, {
          headers: { authorization: `Bearer ${user.access_token}` },
          signal: AbortSignal.timeout(15_000),
        }).catch((error: unknown) => {
          answers.push({ status: -1, ms: Date.now() - started, problem: false })
          throw error
        })
        await res.arrayBuffer()
        answers.push({
          status: res.status,
          ms: Date.now() - started,
          problem: res.headers.get("content-type") === "application/problem+json",
        })
        await new Promise((r) => setTimeout(r, 5))
      }
    })
    await new Promise((r) => setTimeout(r, 500))
    await platform.kill("identity")
    await new Promise((r) => setTimeout(r, 1_500))
    const down = answers.length
    await platform.restart("identity")
    try {
      await client.within(
        "identity to answer through the gateway again",
        async () => answers.at(-1)?.status === 200,
        15_000,
      )
    } finally {
      running = false
      await Promise.all(load.map((loop) => loop.catch(() => {})))
    }
    const unavailable = answers.filter((a) => a.status === 503)
    expect(unavailable.length).toBeGreaterThan(0)
    expect(unavailable.every((a) => a.problem)).toBe(true)
    expect(answers.filter((a) => a.status !== 200 && a.status !== 503)).toEqual([])
    expect(Math.max(...answers.map((a) => a.ms))).toBeLessThan(10_000)
    expect(answers.length).toBeGreaterThan(down)
  }, 120_000)
})
