// The gateway's development listings. The error bus: `GET /_dev/errors` merges every function's recent reports (a
// defect behind the gateway is reported once, by the function that met it), names an upstream that does not answer, and
// is not served in production; a defect on the gateway's own hot path (no fiber) is reported with the route, request
// and trace ids. The dev mailboxes: `GET /_dev/mail` merges the sent mails of every function that has one, newest first,
// leaving out those that have none (404) and naming those that do not answer.
import { randomBytes } from "node:crypto"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Context } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Permissions } from "../../shared/access/Permissions.ts"
import type { ErrorEvent } from "../../shared/ErrorBus.ts"
import { requestRecorder } from "../../shared/HttpMetrics.ts"
import { type AppUnderTest, startApp } from "../../shared/testing/appHarness.ts"
import { app as faultsApp, manifest as faultsManifest } from "../../shared/testing/faultsApp.ts"
import { sql } from "../../shared/testing/harness.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { productionEnv } from "../../shared/testing/productionEnv.ts"
import { proxyOptions } from "./App.ts"
import type { EdgeAuth } from "./EdgeAuth.ts"
import { makeHotPath } from "./HotPath.ts"
import type { RateLimits } from "./RateLimits.ts"
import { settingsOf } from "./RouteSettings.ts"
import * as RouteTable from "./RouteTable.ts"
import { type GatewayUnderTest, startGateway } from "./testing/gatewayHarness.ts"
import { startUpstream, type TestUpstream } from "./testing/upstream.ts"
import { Upstreams } from "./Upstreams.ts"

const faultsRouted = { ...faultsManifest, routes: faultsApp.routes }
const ghost = {
  ...faultsManifest,
  name: "ghost",
  ports: { http: 2 },
  routes: [{ method: "GET" as const, path: "/api/v1/ghost/things", auth: "public" as const }],
}
// Two functions with a dev mailbox each (real HTTP servers standing in), their mails' times interleaved.
const mailer = (name: string, port: number) => ({
  ...faultsManifest,
  name,
  ports: { http: port },
  routes: [{ method: "GET" as const, path: `/api/v1/${name}/things`, auth: "public" as const }],
})
const mailOf = (to: string, minute: number) => ({
  to,
  subject: `at ${minute}`,
  text: `sent at minute ${minute}`,
  html: `<p>sent at minute ${minute}</p>`,
  sentAt: new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString(),
})
const mails = {
  alpha: [mailOf("a@example.com", 5), mailOf("a@example.com", 1)],
  beta: [mailOf("b@example.com", 7), mailOf("b@example.com", 3), mailOf("b@example.com", 2)],
}
const manifests = [faultsRouted, ghost, mailer("alpha", 3), mailer("beta", 4)]
const schema = `t_faults_${randomBytes(4).toString("hex")}`

let faults: AppUnderTest
let gateway: GatewayUnderTest
let probe: Server
let probeUrl: string
let mailboxes: Array<TestUpstream> = []

type HotServices = Context.Context<Upstreams | EdgeAuth | Permissions | RateLimits>

beforeAll(async () => {
  faults = await startApp(faultsApp, { env: { DB_SCHEMA: schema } })
  mailboxes = await Promise.all(
    [mails.alpha, mails.beta].map((items) =>
      startUpstream((request, response) => {
        // Every function lists its errors (none here) and these two their mails.
        const listing = { "/_dev/mail": items, "/_dev/errors": [] }[request.url ?? ""]
        if (listing === undefined) return false
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ items: listing }))
        return true
      }),
    ),
  )
  gateway = await startGateway({
    manifests,
    env: {
      ALPHA_URL: mailboxes[0]!.url,
      BETA_URL: mailboxes[1]!.url,
      FAULTS_URL: faults.url,
      GHOST_URL: `http://127.0.0.1:${await freePort()}`,
      // No per-address count: the hot path then takes a public route with or without Redis.
      RATE_LIMIT_IP_PER_MINUTE: "0",
    },
  })
  // The gateway's hot path over its running services (its error bus among them) with an upstream client that throws
  // once it is asked to forward: a defect of the hot path itself.
  const context = gateway.running.context as unknown as HotServices
  const upstreams = Context.get(context, Upstreams)
  const broken = Context.add(context, Upstreams, {
    ...upstreams,
    forwardNow: () => {
      throw new Error("the forwarding broke")
    },
  })
  const table = RouteTable.fromManifests(manifests)
  const options = proxyOptions(gateway.config, table)
  const hot = makeHotPath({
    services: broken,
    cors: options.cors,
    routeOf: (method, path) => {
      const resolved = table.resolve(method, path)
      return resolved._tag === "Match"
        ? { route: resolved.route, own: settingsOf(resolved.route, options), record: requestRecorder(method, path) }
        : undefined
    },
  })
  probe = createServer((request, response) => {
    const taken = hot({
      request,
      response,
      method: request.method ?? "GET",
      path: (request.url ?? "/").split("?")[0]!,
      requestId: String(request.headers["x-request-id"]),
      clientIp: request.socket.remoteAddress ?? "",
      trustedPeer: false,
      started: performance.now(),
    })
    if (!taken) response.writeHead(599).end()
  })
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve))
  probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`
}, 60_000)

afterAll(async () => {
  await new Promise((resolve) => probe?.close(resolve))
  await gateway?.close()
  await faults?.close()
  await Promise.all(mailboxes.map((m) => m.close()))
  if (gateway) await sql(`DROP SCHEMA IF EXISTS ${gateway.schema} CASCADE`)
  await sql(`DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
})

const listing = async (url: string) =>
  (await (await fetch(`${url}/_dev/errors`)).json()) as { items: Array<ErrorEvent>; unreachable: Array<string> }

describe("GET /_dev/errors at the gateway", () => {
  it("lists every function's recent reports, newest first; a defect behind the gateway is reported by its function only", async () => {
    const answer = await fetch(`${gateway.url}/api/v1/faults/die/7`, { headers: { "x-request-id": "through-gw" } })
    expect(answer.status).toBe(500)
    const { items, unreachable } = await listing(gateway.url)
    const reports = items.filter((item) => item.tags.request_id === "through-gw")
    expect(reports).toHaveLength(1)
    expect(reports[0]).toMatchObject({
      transaction: "/api/v1/faults/die/:id",
      tags: { service: "faults", origin: "http" },
    })
    const times = items.map((item) => item.timestamp)
    expect(times).toEqual([...times].sort((a, b) => b - a))
    // The ghost function does not answer: named, not hiding the others.
    expect(unreachable).toEqual(["ghost"])
  })

  it("reports a defect of the gateway's own hot path with its route, request id, trace and span ids", async () => {
    // The upstream's client is loaded by a first request on the Effect path: only then does the hot path take one.
    expect((await fetch(`${gateway.url}/api/v1/faults/missing`)).status).toBe(404)
    const answer = await fetch(`${probeUrl}/api/v1/faults/missing`, { headers: { "x-request-id": "hot-defect" } })
    expect(answer.status).toBe(500)
    const { items } = await listing(gateway.url)
    const [report, ...more] = items.filter((item) => item.tags.request_id === "hot-defect")
    expect(more).toEqual([])
    expect(report).toMatchObject({
      transaction: "/api/v1/faults/missing",
      fingerprint: ["Error", "/api/v1/faults/missing"],
      tags: { service: "gateway", origin: "http", route: "/api/v1/faults/missing" },
    })
    expect(report!.tags.trace_id).toMatch(/^[0-9a-f]{32}$/)
    expect(report!.tags.span_id).toMatch(/^[0-9a-f]{16}$/)
    expect(report!.exception.values.at(-1)!.value).toBe("the forwarding broke")
  })

  it("is not served in production (nor /_dev/mail)", async () => {
    const production = await startGateway({
      manifests,
      env: {
        ...productionEnv("gateway", ["gateway", "faults", "ghost"]),
        FAULTS_URL: faults.url,
        GHOST_URL: `http://127.0.0.1:${await freePort()}`,
        ALPHA_URL: mailboxes[0]!.url,
        BETA_URL: mailboxes[1]!.url,
      },
    })
    try {
      expect((await fetch(`${production.url}/_dev/errors`)).status).toBe(404)
      expect((await fetch(`${production.url}/_dev/mail`)).status).toBe(404)
    } finally {
      await production.close()
      await sql(`DROP SCHEMA IF EXISTS ${production.schema} CASCADE`)
    }
  })
})

describe("GET /_dev/mail at the gateway", () => {
  it("merges the sent mails of every function with a dev mailbox, newest first; one without (404) is left out", async () => {
    const answer = await fetch(`${gateway.url}/_dev/mail`)
    expect(answer.status).toBe(200)
    const { items, unreachable } = (await answer.json()) as {
      items: Array<{ to: string; subject: string; sentAt: string }>
      unreachable: Array<string>
    }
    expect(items.map((m) => m.subject)).toEqual(["at 7", "at 5", "at 3", "at 2", "at 1"])
    expect(items[0]).toEqual(mails.beta[0])
    expect(items[1]).toEqual(mails.alpha[0])
    // faults has no dev mailbox (404): not unreachable; ghost does not answer.
    expect(unreachable).toEqual(["ghost"])
    // Asked once each, at the same path.
    for (const mailbox of mailboxes) expect(mailbox.seen.map((r) => r.url)).toContain("/_dev/mail")
  })
})
