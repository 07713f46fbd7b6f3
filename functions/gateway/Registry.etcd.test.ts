// The gateway with SERVICE_REGISTRY=etcd, as processes against the real etcd (infra/up.sh etcd): with no instance of
// an upstream it answers 503 problem+json with Retry-After at once; two blog instances registering themselves get
// the gateway's calls spread over them; one killed with `kill -9` costs no failed request.
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Child } from "../../scripts/lib/processes.ts"
import {
  deletePrefix,
  etcdEndpoints as endpoints,
  servedCount,
  startRegistered,
  testPrefix,
} from "../../shared/testing/etcdRegistry.ts"
import { sql } from "../../shared/testing/harness.ts"

const TTL = 3
const prefix = testPrefix()
const schema = `gw_${randomBytes(4).toString("hex")}`
const TAGS = "/api/v1/blog/tags"

const launch = (name: string, env: Record<string, string | undefined> = {}) =>
  startRegistered(name, { prefix, ttlSeconds: TTL, env, ready: "/healthz" })

const tagsServed = (url: string) =>
  servedCount(url, new RegExp(`^http_server_requests_total\\{.*route="${TAGS.replaceAll("/", "\\/")}"`))

const children: Array<Child> = []

describe.skipIf(endpoints.length === 0)("the gateway over the etcd registry (real etcd, real processes)", () => {
  let gateway: string

  beforeAll(async () => {
    // The gateway learns of revocations through Redis here (no database of its own).
    const started = await launch("gateway", {
      DATABASE_URL: undefined,
      RATE_LIMIT_PREFIX: `rl-${schema}`,
      RATE_LIMIT_IP_PER_MINUTE: "0",
    })
    children.push(started.child)
    gateway = started.url
  }, 60_000)

  afterAll(async () => {
    await Promise.all(children.map((child) => child.stop(5_000)))
    await deletePrefix(prefix)
    await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  }, 30_000)

  it("answers 503 problem+json upstream unavailable with Retry-After at once when no instance is registered", async () => {
    const started = performance.now()
    const response = await fetch(`${gateway}${TAGS}`)
    const elapsed = performance.now() - started
    expect(response.status).toBe(503)
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/)
    expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(await response.json()).toMatchObject({ status: 503, detail: "the blog service is unavailable, retry later" })
    expect(elapsed).toBeLessThan(1_000)
  })

  it("spreads calls over the instances that register, and loses none when one is killed with kill -9", async () => {
    const blogs = await Promise.all(["a", "b"].map(() => launch("blog", { DB_SCHEMA: schema })))
    children.push(...blogs.map((b) => b.child))
    const before = await Promise.all(blogs.map((b) => tagsServed(b.url)))
    // The gateway sees them through its watch as soon as they registered (once ready).
    const deadline = Date.now() + 5_000
    while ((await fetch(`${gateway}${TAGS}`)).status !== 200) {
      if (Date.now() > deadline) throw new Error("the gateway never reached the registered blog instances")
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    for (let i = 0; i < 40; i++) expect((await fetch(`${gateway}${TAGS}`)).status).toBe(200)
    const shares = (await Promise.all(blogs.map((b) => tagsServed(b.url)))).map((n, i) => n - before[i]!)
    console.log(`gateway → blog calls per instance: ${shares.join(" / ")}`)
    expect(Math.min(...shares)).toBeGreaterThanOrEqual(5)

    const [survivor, victim] = blogs as [(typeof blogs)[0], (typeof blogs)[0]]
    victim.child.process.kill("SIGKILL")
    await victim.child.exited
    const statuses: Array<number> = []
    const until = Date.now() + (TTL + 1) * 1_000
    while (Date.now() < until) {
      statuses.push((await fetch(`${gateway}${TAGS}`)).status)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    console.log(`after kill -9: ${statuses.length} calls in ${TTL + 1} s, statuses ${[...new Set(statuses)].join(",")}`)
    expect(statuses.filter((s) => s !== 200)).toEqual([])
    expect(await tagsServed(survivor.url)).toBeGreaterThan(0)
  }, 60_000)
})
