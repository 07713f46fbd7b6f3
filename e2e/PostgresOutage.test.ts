import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type FaultMode, type FaultProxy, faultProxy } from "../shared/testing/faultProxy.ts"
import { mailText, type Platform, startPlatform } from "./testing/platform.ts"
import { platformClient } from "./testing/platformFlow.ts"

// What a Postgres outage does to the platform, as the README's outage table says: the whole platform runs as processes
// with its database behind a fault proxy, under a steady load through the gateway, while Postgres hangs (accepts,
// never answers), goes down, and comes back. The shared test Postgres keeps running for every other test.
let platform: Platform
let proxy: FaultProxy
let client: ReturnType<typeof platformClient>
let user: { userId: string; access_token: string; refresh_token: string }

beforeAll(async () => {
  const target = new URL(process.env.DATABASE_URL!)
  proxy = await faultProxy({ host: target.hostname, port: Number(target.port) })
  platform = await startPlatform({ databaseVia: (url) => proxy.via(url) })
  client = platformClient({
    url: platform.url,
    adminEmail: "nobody@example.com",
    mailText: (e) => mailText(platform, e),
  })
  user = await client.signUp(`pg-outage-${randomUUID().slice(0, 8)}@example.com`)
}, 180_000)
afterAll(async () => {
  await platform?.stop()
  await proxy?.close()
}, 60_000)

interface Answer {
  /** The proxy's mode when the request was sent and when its answer came. */
  readonly mode: FaultMode
  readonly answeredIn: FaultMode
  readonly route: string
  readonly status: number
  readonly type: string | null
  readonly ms: number
}

// Requests in a loop (4 in flight) until `stop`, each answer recorded with the proxy's mode when it was sent.
const load = (routes: ReadonlyArray<{ name: string; send: () => Promise<Response> }>) => {
  const answers: Array<Answer> = []
  let running = true
  const worker = async (offset: number) => {
    for (let i = offset; running; i++) {
      const route = routes[i % routes.length]!
      const mode = proxy.mode()
      const started = performance.now()
      const res = await route.send().catch(() => undefined)
      await res?.arrayBuffer().catch(() => undefined)
      answers.push({
        mode,
        answeredIn: proxy.mode(),
        route: route.name,
        status: res?.status ?? 0,
        type: res?.headers.get("content-type") ?? null,
        ms: performance.now() - started,
      })
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  const workers = [0, 1, 2, 3].map(worker)
  return {
    answers,
    stop: async () => {
      running = false
      await Promise.all(workers)
    },
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const gateway = (path: string, token?: string) =>
  fetch(`${platform.url}${path}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(15_000),
  })

describe("a Postgres outage, under load through the gateway", () => {
  it("routes that need the database answer 503 problem+json within ~1 s (hung or down); the rest keep working; all recover", async () => {
    const traffic = load([
      { name: "users/me", send: () => gateway("/api/v1/users/me", user.access_token) },
      { name: "jwks", send: () => gateway("/.well-known/jwks.json") },
      { name: "gateway healthz", send: () => gateway("/healthz") },
    ])
    await sleep(1_000)
    await proxy.set("hang")
    await sleep(4_000)
    const identity = platform.functions.get("identity")!.url
    const hungReadiness = await fetch(`${identity}/readyz`, { signal: AbortSignal.timeout(10_000) })
    const hungLiveness = await fetch(`${identity}/healthz`, { signal: AbortSignal.timeout(10_000) })
    await proxy.set("down")
    await sleep(4_000)
    const login = await client.api("POST", "/api/v1/auth/login", {
      body: { email: "nobody@example.com", password: "correct horse battery" },
    })
    const logout = await client.api("POST", "/api/v1/auth/logout", { body: { refresh_token: user.refresh_token } })
    await proxy.set("pass")
    const back = performance.now()
    const recovered = await client.within(
      "users/me to answer 200 again",
      async () => (await gateway("/api/v1/users/me", user.access_token)).status === 200,
      15_000,
    )
    const recoveryMs = performance.now() - back
    await sleep(500)
    await traffic.stop()

    // A request sent in one mode and answered in the next (a query waiting its turn when the database came back)
    // belongs to neither.
    const during = (mode: FaultMode, route: string) =>
      traffic.answers.filter((a) => a.mode === mode && a.answeredIn === mode && a.route === route)
    for (const mode of ["hang", "down"] as const) {
      const dbRoute = during(mode, "users/me")
      expect(dbRoute.length, mode).toBeGreaterThan(3)
      // Never the gateway's 504 after its 10 s, never a 500: the function's own 503 in about a second.
      expect(new Set(dbRoute.map((a) => a.status)), mode).toEqual(new Set([503]))
      expect(
        dbRoute.every((a) => a.type === "application/problem+json"),
        mode,
      ).toBe(true)
      expect(Math.max(...dbRoute.map((a) => a.ms)), mode).toBeLessThan(3_000)
      // Token verification (auth's keys, revocations) and the gateway itself need no database.
      for (const route of ["jwks", "gateway healthz"]) {
        expect(new Set(during(mode, route).map((a) => a.status)), `${mode} ${route}`).toEqual(new Set([200]))
      }
    }
    // Readiness says "do not send me traffic"; liveness stays up, so an orchestrator does not restart the process.
    expect(hungReadiness.status).toBe(503)
    expect(hungLiveness.status).toBe(200)
    expect(login.status).toBe(503)
    // Sessions live in Postgres: a logout cannot be recorded, and says so rather than pretending.
    expect(logout.status).toBe(503)
    expect(recovered).toBeLessThan(15_000)

    const stats = (mode: FaultMode) => {
      const ms = during(mode, "users/me")
        .map((a) => a.ms)
        .sort((a, b) => a - b)
      return `p50 ${Math.round(ms[Math.floor(ms.length / 2)] ?? 0)} ms, max ${Math.round(ms.at(-1) ?? 0)} ms`
    }
    console.info(
      `postgres outage: users/me hung ${stats("hang")}; down ${stats("down")}; 200 again ${Math.round(recoveryMs)} ms after the database returned`,
    )
    // Writes work again too: a new account, its mail, its sign-in.
    await client.signUp(`pg-after-${randomUUID().slice(0, 8)}@example.com`)
  }, 120_000)
})
