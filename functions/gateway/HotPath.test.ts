import { randomUUID } from "node:crypto"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Tracer } from "effect"
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Permissions } from "../../shared/access/Permissions.ts"
import { requestRecorder } from "../../shared/HttpMetrics.ts"
import { defineModule } from "../../shared/Module.ts"
import { sql } from "../../shared/testing/harness.ts"
import { type JwksServer, serveJwks } from "../../shared/testing/jwksServer.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { proxyOptions } from "./App.ts"
import type { EdgeAuth } from "./EdgeAuth.ts"
import { makeHotPath } from "./HotPath.ts"
import type { RateLimits } from "./RateLimits.ts"
import { settingsOf } from "./RouteSettings.ts"
import * as RouteTable from "./RouteTable.ts"
import { type GatewayUnderTest, startGateway } from "./testing/gatewayHarness.ts"
import { startUpstream, type TestUpstream } from "./testing/upstream.ts"
import type { Upstreams } from "./Upstreams.ts"

// The gateway's hot path (no fiber per request) against its Effect path, in front of a real upstream, with real Redis
// (synced default limits) and tokens signed by a test key served as a JWKS. A probe server runs the gateway's own hot
// path over the gateway's running services and says whether it took each request: the tests see which path answered.
const REDIS = process.env.REDIS_URL
const ISSUER = "https://auth.test"
const AUDIENCE = "platform-test"
const KID = "hot-path-key"
const ORIGIN = "https://app.example.com"
const NOT_TAKEN = 599

const base = {
  version: "0.0.0",
  description: "test upstream",
  ports: { http: 1 },
  dependsOn: [],
  permissions: [],
  events: { publishes: [], consumes: [] },
  migrations: [],
}
const echoManifest = defineModule({
  ...base,
  name: "echo",
  routes: [
    { method: "GET", path: "/api/v1/echo/me", auth: "user" },
    { method: "GET", path: "/api/v1/echo/public", auth: "public" },
    { method: "GET", path: "/api/v1/echo/bare-error", auth: "public" },
    { method: "GET", path: "/api/v1/echo/own-limit", auth: "public", ipPerMinute: 100 },
  ],
})
const downManifest = defineModule({
  ...base,
  name: "down",
  routes: [{ method: "GET", path: "/api/v1/down/thing", auth: "public" }],
})

type HotServices = Context.Context<Upstreams | EdgeAuth | Permissions | RateLimits>

// The gateway's hot path over the given services, as `Http.ts` builds it (routes resolved without its cache).
const hotPathOver = (context: HotServices, table: RouteTable.RouteTable, options: ReturnType<typeof proxyOptions>) =>
  makeHotPath({
    services: context,
    cors: options.cors,
    routeOf: (method, path) => {
      const resolved = table.resolve(method, path)
      return resolved._tag === "Match"
        ? {
            route: resolved.route,
            own: settingsOf(resolved.route, options),
            record: requestRecorder(method, resolved.route.template),
          }
        : undefined
    },
  })

// A server in front of a hot path: 599 when it did not take a request.
const probeServer = (hot: ReturnType<typeof makeHotPath>) =>
  createServer((request, response) => {
    const url = request.url ?? "/"
    const header = request.headers["x-request-id"]
    const taken = hot({
      request,
      response,
      method: request.method ?? "GET",
      path: url.split("?")[0]!,
      requestId: typeof header === "string" ? header : randomUUID(),
      clientIp: request.socket.remoteAddress ?? "",
      trustedPeer: false,
      started: performance.now(),
    })
    if (!taken) response.writeHead(NOT_TAKEN).end()
  })

// A tracer that exports: the native tracer's spans, kept.
const exported: Array<Tracer.Span> = []
const recordingTracer = Tracer.make({
  span: (options) => {
    const span = Tracer.nativeTracer.span(options)
    exported.push(span)
    return span
  },
})

let gateway: GatewayUnderTest
let echo: TestUpstream
let jwks: JwksServer
let privateKey: CryptoKey
let probe: Server
let probeUrl: string
let exportingProbe: Server
let exportingProbeUrl: string

beforeAll(async () => {
  const pair = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true })
  privateKey = pair.privateKey as CryptoKey
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: "EdDSA", use: "sig" }
  jwks = await serveJwks(async () => ({ keys: [jwk] }))
  echo = await startUpstream((request, response) => {
    if ((request.url ?? "").startsWith("/api/v1/echo/bare-error")) {
      response.writeHead(500, { "content-type": "text/html" }).end("<h1>stack trace at x.js:1</h1>")
      return true
    }
    response
      .writeHead(200, { "content-type": "application/json", "x-upstream": "echo" })
      .end(JSON.stringify({ headers: request.headers }))
    return true
  })
  const manifests = [echoManifest, downManifest]
  gateway = await startGateway({
    manifests,
    env: {
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      AUTH_JWKS_URL: jwks.url.toString(),
      ECHO_URL: echo.url,
      DOWN_URL: `http://127.0.0.1:${await freePort()}`,
      CORS_ORIGINS: ORIGIN,
      RATE_LIMIT_IP_PER_MINUTE: "1000",
      RATE_LIMIT_USER_PER_MINUTE: "4",
    },
  })
  // The gateway's hot path over its running services, behind a server of its own: 599 when it did not take a request.
  const context = gateway.running.context as unknown as HotServices
  const table = RouteTable.fromManifests(manifests)
  const options = proxyOptions(gateway.config, table)
  probe = probeServer(hotPathOver(context, table, options))
  // The same over a tracer that exports (it records the spans it makes): the hot path makes its span only then.
  exportingProbe = probeServer(hotPathOver(Context.add(context, Tracer.Tracer, recordingTracer), table, options))
  await new Promise<void>((resolve) => exportingProbe.listen(0, "127.0.0.1", resolve))
  exportingProbeUrl = `http://127.0.0.1:${(exportingProbe.address() as AddressInfo).port}`
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve))
  probeUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise((resolve) => probe?.close(resolve))
  await new Promise((resolve) => exportingProbe?.close(resolve))
  await gateway?.close()
  await Promise.all([echo?.close(), jwks?.close()])
  if (gateway) await sql(`DROP SCHEMA IF EXISTS ${gateway.schema} CASCADE`)
})

const sign = (sub = randomUUID()) =>
  new SignJWT({ sid: randomUUID(), jti: randomUUID() })
    .setProtectedHeader({ alg: "EdDSA", kid: KID, typ: "JWT" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(privateKey)

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

describe.skipIf(!REDIS)("the gateway's hot path", () => {
  it("takes only what memory answers: a new token, a refused one, preflights and unknown routes go to the Effect path", async () => {
    const token = await sign()
    const before = echo.seen.length
    // Not verified yet: not taken, and nothing counted (the Effect path's first answer has the whole budget left).
    expect((await fetch(`${probeUrl}/api/v1/echo/me`, { headers: bearer(token) })).status).toBe(NOT_TAKEN)
    const first = await fetch(`${gateway.url}/api/v1/echo/me`, { headers: bearer(token) })
    expect(first.status).toBe(200)
    expect(first.headers.get("ratelimit-remaining")).toBe("3")
    // Verified, its session's "not revoked" answer still reused: taken, counted against the same budget.
    const second = await fetch(`${probeUrl}/api/v1/echo/me`, { headers: bearer(token) })
    expect(second.status).toBe(200)
    expect(second.headers.get("ratelimit-remaining")).toBe("2")
    expect(echo.seen.length).toBe(before + 2)

    const notTaken = [
      fetch(`${probeUrl}/api/v1/echo/me`, { headers: bearer(`${token}x`) }),
      fetch(`${probeUrl}/api/v1/echo/me`),
      fetch(`${probeUrl}/api/v1/echo/public`, {
        method: "OPTIONS",
        headers: { origin: ORIGIN, "access-control-request-method": "GET" },
      }),
      fetch(`${probeUrl}/api/v1/echo/nowhere`),
      fetch(`${probeUrl}/api/v1/echo/public`, { method: "DELETE" }),
      // A route's own limit counts exactly, in Redis: the Effect path's.
      fetch(`${probeUrl}/api/v1/echo/own-limit`),
      fetch(`${probeUrl}/api/v1/echo/public`, { method: "POST", headers: { "content-length": String(2 ** 30) } }),
    ]
    for (const res of await Promise.all(notTaken)) expect(res.status).toBe(NOT_TAKEN)
    expect(echo.seen.length).toBe(before + 2)
  })

  it("forwards and answers as the Effect path: request id, trace, forwarding headers, CORS, RateLimit-*, 429", async () => {
    const token = await sign()
    const traceId = randomUUID().replaceAll("-", "")
    const headers = {
      ...bearer(token),
      origin: ORIGIN,
      "x-request-id": "hot-1",
      traceparent: `00-${traceId}-b7ad6b7169203331-01`,
      "x-forwarded-for": "203.0.113.9",
    }
    expect((await fetch(`${gateway.url}/api/v1/echo/me`, { headers })).status).toBe(200)
    const effectSeen = echo.seen.at(-1)!
    const res = await fetch(`${probeUrl}/api/v1/echo/me`, { headers })
    expect(res.status).toBe(200)
    const seen = echo.seen.at(-1)!
    expect(seen).not.toBe(effectSeen)
    for (const answer of [seen, effectSeen]) {
      expect(answer.headers["x-request-id"]).toBe("hot-1")
      // The trace continues with a span of the gateway's own.
      expect(answer.headers.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`))
      expect(answer.headers.traceparent).not.toContain("b7ad6b7169203331")
      // Not a trusted proxy: the client's X-Forwarded-For is replaced by the peer.
      expect(answer.headers["x-forwarded-for"]).toMatch(/^(::ffff:)?127\.0\.0\.1$/)
      expect(answer.headers["x-forwarded-proto"]).toBe("http")
      expect(answer.headers.authorization).toBe(`Bearer ${token}`)
    }
    expect(res.headers.get("x-request-id")).toBe("hot-1")
    expect(res.headers.get("x-upstream")).toBe("echo")
    expect(res.headers.get("access-control-allow-origin")).toBe(ORIGIN)
    expect(res.headers.get("vary")).toBe("Origin")
    expect(res.headers.get("ratelimit-limit")).toBe("4")
    expect(res.headers.get("ratelimit-remaining")).toBe("2")
    await res.body?.cancel()

    // Over the user's limit on the hot path: refused there with the Effect path's problem, not forwarded.
    expect((await fetch(`${probeUrl}/api/v1/echo/me`, { headers })).status).toBe(200)
    expect((await fetch(`${probeUrl}/api/v1/echo/me`, { headers })).status).toBe(200)
    const forwarded = echo.seen.length
    const over = await fetch(`${probeUrl}/api/v1/echo/me`, { headers })
    expect(over.status).toBe(429)
    expect(over.headers.get("content-type")).toContain("application/problem+json")
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(over.headers.get("ratelimit-remaining")).toBe("0")
    expect(over.headers.get("access-control-allow-origin")).toBe(ORIGIN)
    expect(over.headers.get("x-request-id")).toBe("hot-1")
    expect(((await over.json()) as { code: string }).code).toBe("too_many_requests")
    expect(echo.seen.length).toBe(forwarded)

    // Counted in the gateway's metrics, by route template and status.
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text()
    expect(metrics).toMatch(/http_server_requests_total\{[^}]*route="\/api\/v1\/echo\/me"[^}]*status="429"/)
  })

  it("answers upstream failures with the Effect path's problems: a bare error page, an upstream that is down", async () => {
    const bare = await fetch(`${probeUrl}/api/v1/echo/bare-error`)
    expect(bare.status).toBe(500)
    expect(bare.headers.get("content-type")).toContain("application/problem+json")
    expect(await bare.text()).not.toContain("stack trace")
    const down = await fetch(`${probeUrl}/api/v1/down/thing`)
    expect(down.status).toBe(503)
    expect(down.headers.get("retry-after")).toBe("1")
    expect(((await down.json()) as { code: string }).code).toBe("service_unavailable")
  })

  it("makes its server span when a tracer exports, and continues the trace (sampled or not) either way", async () => {
    const traceId = randomUUID().replaceAll("-", "")
    const headers = { traceparent: `00-${traceId}-b7ad6b7169203331-01`, "x-request-id": "hot-span" }
    const before = exported.length
    const res = await fetch(`${exportingProbeUrl}/api/v1/echo/public?x=1`, { headers })
    expect(res.status).toBe(200)
    await res.body?.cancel()
    const spans = exported.slice(before)
    expect(spans).toHaveLength(1)
    const span = spans[0]!
    expect(span.name).toBe("http.server GET")
    expect(span.kind).toBe("server")
    expect(span.traceId).toBe(traceId)
    expect(span.parent._tag === "Some" && span.parent.value.spanId).toBe("b7ad6b7169203331")
    expect(span.status._tag).toBe("Ended")
    expect(Object.fromEntries(span.attributes)).toMatchObject({
      "http.request.method": "GET",
      "url.path": "/api/v1/echo/public",
      "http.route": "/api/v1/echo/public",
      "http.response.status_code": 200,
    })
    // The upstream's traceparent is that span's.
    expect(echo.seen.at(-1)!.headers.traceparent).toBe(`00-${traceId}-${span.spanId}-01`)

    // Without an exporting tracer no span is made, and the ids still continue the trace; an unsampled parent stays
    // unsampled, and a request without one starts a trace.
    const unsampled = await fetch(`${probeUrl}/api/v1/echo/public`, {
      headers: { traceparent: `00-${traceId}-b7ad6b7169203331-00` },
    })
    expect(unsampled.status).toBe(200)
    await unsampled.body?.cancel()
    expect(echo.seen.at(-1)!.headers.traceparent).toMatch(
      new RegExp(`^00-${traceId}-(?!b7ad6b7169203331)[0-9a-f]{16}-00$`),
    )
    const fresh = await fetch(`${probeUrl}/api/v1/echo/public`)
    await fresh.body?.cancel()
    const started = echo.seen.at(-1)!.headers.traceparent as string
    expect(started).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    expect(started).not.toContain(traceId)
    expect(exported.length).toBe(before + 1)
  })
})
