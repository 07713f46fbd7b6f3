import { randomUUID } from "node:crypto"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type FaultMode, type FaultProxy, faultProxy } from "../shared/testing/faultProxy.ts"
import { mailText as mailTextOf, type Platform, startPlatform } from "./testing/platform.ts"
import { platformClient } from "./testing/platformFlow.ts"

// A Redis outage under load: the whole platform as separate processes, its Redis behind a fault proxy (the shared
// Redis keeps running for the other tests). Redis is where revoked sessions, rate-limit counters, sign-in throttling
// and OIDC attempts are shared between instances; without it every function serves degraded (docs/architecture.md,
// "Redis outage"): nothing signed-in turns 503, a logout still reaches every verifier through auth's events, and
// everything returns to Redis within about a second of its return.
const REDIS_URL = process.env.REDIS_URL ?? ""
const PASSWORD = "correct horse battery"
const rateLimitPrefix = `rl-outage-${randomUUID().slice(0, 8)}`
// A tiny per-address limit on one cheap public route, to see the limit hold in each phase.
const LIMITED = "/.well-known/jwks.json"
const LIMIT = 5

let proxy: FaultProxy
let platform: Platform
let redis: Redis
let client: ReturnType<typeof platformClient>
let email: string

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const sidOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()).sid as string
const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
}

beforeAll(async () => {
  const target = new URL(REDIS_URL)
  proxy = await faultProxy({ host: target.hostname, port: Number(target.port) })
  redis = new Redis(REDIS_URL)
  platform = await startPlatform({
    env: {
      REDIS_URL: proxy.via(REDIS_URL),
      RATE_LIMIT_PREFIX: rateLimitPrefix,
      GATEWAY_ROUTES: JSON.stringify([{ method: "GET", path: LIMITED, ipPerMinute: LIMIT }]),
    },
  })
  client = platformClient({
    url: platform.url,
    adminEmail: "nobody@example.com",
    mailText: (to) => mailTextOf(platform, to),
  })
  email = `outage-${randomUUID().slice(0, 8)}@example.com`
  await client.signUp(email)
}, 180_000)

afterAll(async () => {
  await platform?.stop()
  await proxy?.close()
  const keys = await redis.keys(`${platform?.database}:${rateLimitPrefix}*`)
  if (keys.length > 0) await redis.del(...keys)
  redis?.disconnect()
}, 60_000)

const login = async () => {
  const res = await client.api("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return res.body as { access_token: string; refresh_token: string }
}

// A request with the caller's address set (the platform's gateway trusts X-Forwarded-For from this host).
const fromAddress = (ip: string, path: string) =>
  fetch(`${platform.url}${path}`, { headers: { "x-forwarded-for": ip } }).then(async (res) => {
    await res.arrayBuffer()
    return res.status
  })

// How long until `token` is refused at the gateway and straight at identity (ms), checked every 25 ms up to 5 s.
const refusedAfter = async (token: string) => {
  const started = Date.now()
  const targets = [platform.url, platform.functions.get("identity")!.url]
  const pending = new Set(targets)
  while (pending.size > 0 && Date.now() - started < 5_000) {
    for (const base of [...pending]) {
      const res = await fetch(`${base}/api/v1/users/me`, { headers: { authorization: `Bearer ${token}` } })
      await res.arrayBuffer()
      if (res.status === 401) pending.delete(base)
      else expect(res.status).toBe(200)
    }
    if (pending.size > 0) await sleep(25)
  }
  expect([...pending], "still accepted after 5 s").toEqual([])
  return Date.now() - started
}

const readiness = async (fn: string) => {
  const res = await fetch(`${platform.functions.get(fn)!.url}/readyz`)
  return { status: res.status, body: await res.text() }
}

describe("a Redis outage under load", () => {
  it("signed-in routes keep answering, logout revokes, login and limits work; Redis is used again once back", async () => {
    // The trickle: one signed-in request every 20 ms, each one's status and latency recorded with the phase it started
    // in, or the outage it met when it ended in one (the first request of a hang is the slowest).
    const steady = await login()
    const samples: Array<{ phase: FaultMode | "before"; status: number; ms: number }> = []
    let phase = "before" as FaultMode | "before" // (a cast: TypeScript would narrow it to "before" inside the loop)
    let running = true
    const trickle = (async () => {
      while (running) {
        const at = phase
        const started = performance.now()
        const status = await fetch(`${platform.url}/api/v1/users/me`, {
          headers: { authorization: `Bearer ${steady.access_token}` },
        }).then(
          async (res) => {
            await res.arrayBuffer()
            return res.status
          },
          () => 0,
        )
        samples.push({ phase: phase === "pass" ? at : phase, status, ms: performance.now() - started })
        await sleep(20)
      }
    })()

    const outage = async (mode: FaultMode, address: string) => {
      phase = mode
      await proxy.set(mode)
      await sleep(1_500)
      // Health: ready (degraded), so an orchestrator keeps every instance.
      for (const fn of ["gateway", "auth", "identity"]) {
        const ready = await readiness(fn)
        expect(ready.status, `${fn} ${ready.body}`).toBe(200)
        expect(JSON.parse(ready.body), ready.body).toMatchObject({ status: "degraded", checks: { redis: "degraded" } })
      }
      // Login still issues tokens, and they work.
      const session = await login()
      const me = await client.api("GET", "/api/v1/users/me", { token: session.access_token })
      expect(me.status).toBe(200)
      // A logout still revokes: refused at the gateway and at the service within about a second.
      const logout = await client.api("POST", "/api/v1/auth/logout", { body: { refresh_token: session.refresh_token } })
      expect(logout.status).toBe(204)
      const refusal = await refusedAfter(session.access_token)
      expect(refusal).toBeLessThan(1_500)
      // Rate limits still limit, per instance in memory.
      const statuses: Array<number> = []
      for (let i = 0; i < LIMIT + 2; i++) statuses.push(await fromAddress(address, LIMITED))
      expect(statuses).toEqual([...Array(LIMIT).fill(200), 429, 429])
      expect(await redis.keys(`${platform.database}:${rateLimitPrefix}*${address}`)).toEqual([])
      return refusal
    }

    // Back: within about a second everything uses Redis again.
    const back = async (address: string) => {
      phase = "pass"
      await proxy.set("pass")
      await sleep(1_500)
      for (const fn of ["gateway", "auth", "identity"]) {
        const ready = await readiness(fn)
        expect(ready.status).toBe(200)
        expect(ready.body).toContain('"redis":"ok"')
      }
      const session = await login()
      const logout = await client.api("POST", "/api/v1/auth/logout", { body: { refresh_token: session.refresh_token } })
      expect(logout.status).toBe(204)
      expect(await redis.get(`${platform.database}:revoked-session:${sidOf(session.access_token)}`)).toBe("1")
      await refusedAfter(session.access_token)
      const statuses: Array<number> = []
      for (let i = 0; i < LIMIT + 1; i++) statuses.push(await fromAddress(address, LIMITED))
      expect(statuses).toEqual([...Array(LIMIT).fill(200), 429])
      expect((await redis.keys(`${platform.database}:${rateLimitPrefix}*${address}`)).length).toBe(1)
    }

    await sleep(500)
    const [refusalDown, refusalHang] = await (async () => {
      try {
        const down = await outage("down", "10.99.0.1")
        await back("10.99.0.2")
        const hang = await outage("hang", "10.99.0.3")
        await back("10.99.0.4")
        return [down, hang]
      } finally {
        running = false
        await trickle
      }
    })()
    const during = samples.filter((s) => s.phase === "down" || s.phase === "hang")
    const failures = samples.filter((s) => s.status !== 200)
    const latency = (mode: string) => {
      const ms = samples.filter((s) => s.phase === mode).map((s) => s.ms)
      return `${mode}: n=${ms.length} p50=${percentile(ms, 50).toFixed(1)} ms max=${Math.max(...ms).toFixed(1)} ms`
    }
    console.info(
      `Redis outage: ${["before", "down", "hang", "pass"].map(latency).join("; ")}; ` +
        `logout refused after ${refusalDown} ms (down), ${refusalHang} ms (hang)`,
    )
    expect(during.length).toBeGreaterThan(50)
    expect(failures, JSON.stringify(failures.slice(0, 5))).toEqual([])
    // At most one command timeout (500 ms) per hop: the gateway's and the service's, before each finds Redis down.
    expect(Math.max(...during.map((s) => s.ms))).toBeLessThan(1_500)
    expect(
      percentile(
        during.map((s) => s.ms),
        50,
      ),
    ).toBeLessThan(100)
  }, 120_000)
})
