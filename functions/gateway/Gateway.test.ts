import { randomUUID } from "node:crypto"
import { Agent, request as httpRequest } from "node:http"
import { Effect, Layer } from "effect"
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SessionRevocations } from "../../shared/access/SessionRevocations.ts"
import { Health } from "../../shared/Health.ts"
import { defineModule } from "../../shared/Module.ts"
import * as PgEventBus from "../../shared/PgEventBus.ts"
import { eventually, sql } from "../../shared/testing/harness.ts"
import { type JwksServer, serveJwks } from "../../shared/testing/jwksServer.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { ADMIN_ROLE_ID } from "../authz/Role.ts"
import { type AuthzUnderTest, startAuthz } from "../authz/testing/authzHarness.ts"
import { manifests } from "../registry.ts"
import { type GatewayUnderTest, startGateway } from "./testing/gatewayHarness.ts"
import { startUpstream, type TestUpstream } from "./testing/upstream.ts"

/** A function as the registry knows it (with its routes). */
const registered = (name: string) => manifests.find((m) => m.name === name)!

// The gateway in-process in front of the real authz (HTTP + gRPC on real Postgres and Redis) and small real HTTP
// upstreams for the proxy mechanics; access tokens signed by a test Ed25519 key served as a JWKS.

const ISSUER = "https://auth.test"
const AUDIENCE = "platform-test"

const base = {
  version: "0.0.0",
  description: "test upstream",
  dependsOn: [],
  permissions: [],
  migrations: [],
}
const events = { publishes: [], consumes: [] }
const echoManifest = defineModule({
  ...base,
  name: "echo",
  ports: { http: 1 },
  events,
  routes: [
    { method: "GET", path: "/api/v1/echo/public", auth: "public" },
    { method: "POST", path: "/api/v1/echo/upload", auth: "public" },
    // A route with a body limit of its own (an upload's), over the gateway's 1 MiB default.
    { method: "POST", path: "/api/v1/echo/large", auth: "public", maxBodyBytes: 3 * 1024 * 1024 },
    { method: "GET", path: "/api/v1/echo/stream", auth: "public" },
    // The manifest's own timeout (GATEWAY_ROUTES shortens it below) and limits.
    { method: "GET", path: "/api/v1/echo/slow", auth: "public", timeoutMs: 5_000 },
    { method: "GET", path: "/api/v1/echo/limited", auth: "public", ipPerMinute: 3 },
    { method: "GET", path: "/api/v1/echo/bare-error", auth: "public" },
    { method: "POST", path: "/api/v1/echo/nothing", auth: "public" },
    { method: "POST", path: "/api/v1/echo/notes", auth: "user" },
    { method: "GET", path: "/api/v1/echo/me", auth: "user" },
    { method: "GET", path: "/api/v1/echo/user-limited", auth: "user", userPerMinute: 2 },
    { method: "GET", path: "/api/v1/echo/items/{id}", auth: { permission: "blog.post.create" } },
    { method: "GET", path: "/api/v1/echo/items/special", auth: "public" },
  ],
})
const flakyManifest = defineModule({
  ...base,
  name: "flaky",
  ports: { http: 1 },
  events,
  routes: [
    { method: "GET", path: "/api/v1/flaky/reset", auth: "public" },
    { method: "POST", path: "/api/v1/flaky/reset", auth: "public" },
    { method: "GET", path: "/api/v1/flaky/ok", auth: "public" },
  ],
})
const downManifest = defineModule({
  ...base,
  name: "down",
  ports: { http: 1 },
  events,
  routes: [{ method: "GET", path: "/api/v1/down/thing", auth: "public" }],
})

let authz: AuthzUnderTest
let gateway: GatewayUnderTest
let echo: TestUpstream
let flaky: TestUpstream
let jwks: JwksServer
let downPort: number
let privateKey: CryptoKey
let release: () => void = () => {}
const KID = "test-key-1"
const REDIS = process.env.REDIS_URL

beforeAll(async () => {
  const pair = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true })
  privateKey = pair.privateKey as CryptoKey
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: "EdDSA", use: "sig" }
  jwks = await serveJwks(async () => ({ keys: [jwk] }))
  // authz verifies the tokens these tests sign, as it verifies auth's.
  authz = await startAuthz({
    issuer: { jwksUrl: jwks.url, issue: (sub) => sign({}, { sub }), close: async () => {} },
  })
  echo = await startUpstream((request, response, body) => {
    const url = request.url ?? ""
    if (url.startsWith("/openapi.json")) {
      response.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          openapi: "3.1.0",
          info: { title: "echo", version: "1" },
          paths: {
            "/api/v1/echo/public": { get: { operationId: "echo.public", responses: { "200": { description: "ok" } } } },
            "/internal/secret": { get: { operationId: "echo.secret", responses: { "200": { description: "ok" } } } },
          },
          components: { schemas: { Thing: { type: "string" } } },
        }),
      )
      return true
    }
    if (url.startsWith("/api/v1/echo/stream")) {
      response.writeHead(200, { "content-type": "text/plain" })
      response.write("first;")
      release = () => response.end("second")
      return true
    }
    if (url.startsWith("/api/v1/echo/slow")) {
      const ms = Number(new URL(url, "http://x").searchParams.get("ms") ?? 1_500)
      const timer = setTimeout(() => response.writeHead(200).end("late"), ms)
      response.once("close", () => clearTimeout(timer))
      return true
    }
    if (url.startsWith("/api/v1/echo/nothing")) {
      response.writeHead(204, { "x-done": "yes" }).end()
      return true
    }
    if (url.startsWith("/api/v1/echo/bare-error")) {
      response.writeHead(500, { "content-type": "text/html" }).end("<h1>stack trace at x.js:1</h1>")
      return true
    }
    response
      .writeHead(200, { "content-type": "application/json", connection: "keep-alive", "keep-alive": "timeout=77" })
      .end(JSON.stringify({ url, headers: request.headers, bytes: body.length }))
    return true
  })
  flaky = await startUpstream((request, response) => {
    if ((request.url ?? "").startsWith("/api/v1/flaky/reset")) {
      request.socket.destroy()
      return true
    }
    response.writeHead(200, { "content-type": "application/json" }).end("{}")
    return true
  })
  downPort = await freePort()
  gateway = await startGateway({
    manifests: [registered("authz"), echoManifest, flakyManifest, downManifest],
    bus: PgEventBus.layer({
      schemaOf: (topic) => (topic === "authz.events" ? authz.db.schema : `missing_${topic.split(".")[0]}`),
      pollInterval: "50 millis",
    }),
    env: {
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      AUTH_JWKS_URL: jwks.url.toString(),
      AUTHZ_GRPC_URL: authz.grpcAddress,
      AUTHZ_URL: authz.url,
      ECHO_URL: echo.url,
      FLAKY_URL: flaky.url,
      DOWN_URL: `http://127.0.0.1:${downPort}`,
      CORS_ORIGINS: "https://app.example.com",
      RATE_LIMIT_IP_PER_MINUTE: "0",
      RATE_LIMIT_USER_PER_MINUTE: "0",
      CIRCUIT_BREAKER_FAILURES: "3",
      CIRCUIT_BREAKER_COOLDOWN_MS: "500",
      // Configuration beats the manifest.
      GATEWAY_ROUTES: JSON.stringify([{ method: "GET", path: "/api/v1/echo/slow", timeoutMs: 300 }]),
    },
  })
})

afterAll(async () => {
  await gateway?.close()
  await Promise.all([authz?.close(), echo?.close(), flaky?.close(), jwks?.close()])
  if (authz) await sql(`DROP SCHEMA IF EXISTS ${authz.db.schema} CASCADE`)
  if (gateway) await sql(`DROP SCHEMA IF EXISTS ${gateway.schema} CASCADE`)
})

const sign = (
  claims: Record<string, unknown> = {},
  options: {
    readonly sub?: string
    readonly sid?: string
    readonly iss?: string
    readonly aud?: string
    readonly exp?: number
  } = {},
) => {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ sid: options.sid ?? randomUUID(), jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg: "EdDSA", kid: KID, typ: "JWT" })
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setSubject(options.sub ?? randomUUID())
    .setIssuedAt(now)
    .setExpirationTime(options.exp ?? now + 600)
    .sign(privateKey)
}

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${gateway.url}${path}`, { headers })
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

describe("routing from the manifests", () => {
  it("proxies a public route and forwards request id, traceparent, forwarding headers and Authorization", async () => {
    const traceId = "0af7651916cd43dd8448eb211c80319c"
    const res = await get("/api/v1/echo/public?x=1", {
      "x-request-id": "req-123",
      traceparent: `00-${traceId}-b7ad6b7169203331-01`,
      "x-forwarded-for": "6.6.6.6",
      authorization: "Bearer whatever",
    })
    expect(res.status).toBe(200)
    expect(res.headers.get("x-request-id")).toBe("req-123")
    const seen = (await res.json()) as { url: string; headers: Record<string, string> }
    expect(seen.url).toBe("/api/v1/echo/public?x=1")
    expect(seen.headers["x-request-id"]).toBe("req-123")
    expect(seen.headers.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[01]$`))
    expect(seen.headers["x-forwarded-for"]).toMatch(/127\.0\.0\.1$/)
    expect(seen.headers["x-forwarded-for"]).not.toContain("6.6.6.6")
    expect(seen.headers["x-forwarded-proto"]).toBe("http")
    expect(seen.headers.authorization).toBe("Bearer whatever")
    expect(res.headers.get("keep-alive")).not.toBe("timeout=77")
  })

  it("strips hop-by-hop headers, including those the Connection header names", async () => {
    const seen = await new Promise<{ headers: Record<string, string> }>((resolve, reject) => {
      const req = httpRequest(`${gateway.url}/api/v1/echo/public`, {
        headers: { connection: "keep-alive, x-secret", "x-secret": "hop", te: "trailers", "x-kept": "yes" },
      })
      req.on("response", (res) => {
        let text = ""
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString()
        })
        res.on("end", () => resolve(JSON.parse(text)))
      })
      req.on("error", reject)
      req.end()
    })
    expect(seen.headers["x-secret"]).toBeUndefined()
    expect(seen.headers.te).toBeUndefined()
    expect(seen.headers["x-kept"]).toBe("yes")
  })

  it("starts a trace and makes a request id when the client sends none", async () => {
    const seen = (await (await get("/api/v1/echo/public")).json()) as { headers: Record<string, string> }
    expect(seen.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
    expect(seen.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("answers 404 for unknown paths and 405 with Allow for a known path and a wrong method, as problems", async () => {
    const missing = await get("/api/v1/nothing/here")
    expect(missing.status).toBe(404)
    expect(missing.headers.get("content-type")).toContain("application/problem+json")
    expect(((await missing.json()) as { code: string }).code).toBe("not_found")
    expect(missing.headers.get("x-request-id")).toBeTruthy()
    const wrong = await fetch(`${gateway.url}/api/v1/echo/public`, { method: "DELETE" })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get("allow")).toBe("GET, HEAD")
    expect(((await wrong.json()) as { code: string }).code).toBe("method_not_allowed")
    // Dot segments and encoded slashes are never routed.
    expect((await get("/api/v1/echo/items/..%2Fpublic")).status).toBe(404)
  })

  it("keeps the connection open after answering a bodyless request itself (404, 401)", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const send = (path: string) =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const req = httpRequest(`${gateway.url}${path}`, { agent }, (res) => {
          res.resume()
          res.on("end", () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }))
        })
        req.on("error", reject)
        req.end()
      })
    try {
      expect((await send("/api/v1/nowhere")).status).toBe(404)
      expect(await send("/api/v1/echo/me")).toEqual({ status: 401, reused: true })
      expect(await send("/api/v1/echo/public")).toEqual({ status: 200, reused: true })
    } finally {
      agent.destroy()
    }
  })

  it("prefers literal segments: /items/special is public while /items/{id} needs a permission", async () => {
    expect((await get("/api/v1/echo/items/special")).status).toBe(200)
    expect((await get("/api/v1/echo/items/42")).status).toBe(401)
  })

  it("passes 204 answers and HEAD requests through without a body (and keeps serving)", async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gateway.url}/api/v1/echo/nothing`, { method: "POST", body: "{}" })
      expect(res.status).toBe(204)
      expect(res.headers.get("x-done")).toBe("yes")
      const head = await fetch(`${gateway.url}/api/v1/echo/public`, { method: "HEAD" })
      expect(head.status).toBe(200)
      expect(await head.text()).toBe("")
    }
    expect((await get("/api/v1/echo/public")).status).toBe(200)
  })

  it("replaces an upstream's bare error page with a problem (no stack trace leaks)", async () => {
    const res = await get("/api/v1/echo/bare-error")
    expect(res.status).toBe(500)
    expect(res.headers.get("content-type")).toContain("application/problem+json")
    expect(await res.text()).not.toContain("stack")
  })
})

describe("streaming and body limits", () => {
  it("streams the response: the first chunk arrives before the upstream finished", async () => {
    const res = await get("/api/v1/echo/stream")
    const reader = res.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toBe("first;")
    release()
    let rest = ""
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      rest += new TextDecoder().decode(chunk.value)
    }
    expect(rest).toBe("second")
  })

  it("streams a chunked request body to the upstream", async () => {
    const chunk = new Uint8Array(64 * 1024).fill(97)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 10) return controller.close()
        sent++
        controller.enqueue(chunk)
      },
    })
    const res = await fetch(`${gateway.url}/api/v1/echo/upload`, {
      method: "POST",
      body,
      duplex: "half",
      headers: { "content-type": "application/octet-stream" },
    } as RequestInit)
    expect(res.status).toBe(200)
    expect(((await res.json()) as { bytes: number }).bytes).toBe(640 * 1024)
  })

  it("answers Expect: 100-continue and forwards the body that follows", async () => {
    const answer = await new Promise<{ continued: boolean; status: number; body: string }>((resolve, reject) => {
      let continued = false
      const req = httpRequest(`${gateway.url}/api/v1/echo/upload`, {
        method: "POST",
        headers: { expect: "100-continue", "content-type": "application/octet-stream", "content-length": "5" },
      })
      req.on("continue", () => {
        continued = true
        req.end("hello")
      })
      req.on("response", (res) => {
        let body = ""
        res.on("data", (chunk) => {
          body += chunk
        })
        res.on("end", () => resolve({ continued, status: res.statusCode ?? 0, body }))
      })
      req.on("error", reject)
    })
    expect(answer.continued).toBe(true)
    expect(answer.status).toBe(200)
    expect((JSON.parse(answer.body) as { bytes: number }).bytes).toBe(5)
  })

  it("answers 413 for a declared 2 MiB body and for a chunked body over the limit", async () => {
    const declared = await fetch(`${gateway.url}/api/v1/echo/upload`, {
      method: "POST",
      body: new Uint8Array(2 * 1024 * 1024),
    })
    expect(declared.status).toBe(413)
    expect(((await declared.json()) as { code: string }).code).toBe("payload_too_large")
    const chunk = new Uint8Array(256 * 1024)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 8) return controller.close()
        sent++
        controller.enqueue(chunk)
      },
    })
    const chunked = await fetch(`${gateway.url}/api/v1/echo/upload`, {
      method: "POST",
      body,
      duplex: "half",
    } as RequestInit)
    expect(chunked.status).toBe(413)
  })

  it("a route's own body limit holds instead of the default: 2 MiB through, 4 MiB declared or chunked 413", async () => {
    const through = await fetch(`${gateway.url}/api/v1/echo/large`, {
      method: "POST",
      body: new Uint8Array(2 * 1024 * 1024),
    })
    expect(through.status).toBe(200)
    expect(((await through.json()) as { bytes: number }).bytes).toBe(2 * 1024 * 1024)
    const declared = await fetch(`${gateway.url}/api/v1/echo/large`, {
      method: "POST",
      body: new Uint8Array(4 * 1024 * 1024),
    })
    expect(declared.status).toBe(413)
    expect(((await declared.json()) as { detail: string }).detail).toBe("request body is larger than 3145728 bytes")
    const chunk = new Uint8Array(256 * 1024)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 16) return controller.close()
        sent++
        controller.enqueue(chunk)
      },
    })
    const chunked = await fetch(`${gateway.url}/api/v1/echo/large`, {
      method: "POST",
      body,
      duplex: "half",
    } as RequestInit)
    expect(chunked.status).toBe(413)
  })
})

describe("JWT at the edge", () => {
  const refused = async (headers: Record<string, string>, challenge: string) => {
    const before = echo.seen.length
    const res = await get("/api/v1/echo/me", headers)
    expect(res.status).toBe(401)
    expect(res.headers.get("www-authenticate")).toBe(challenge)
    expect(((await res.json()) as { code: string }).code).toBe("unauthorized")
    expect(echo.seen.length).toBe(before)
  }

  it("passes a valid token through (the Authorization header unchanged)", async () => {
    const token = await sign()
    const res = await get("/api/v1/echo/me", bearer(token))
    expect(res.status).toBe(200)
    expect(((await res.json()) as { headers: Record<string, string> }).headers.authorization).toBe(`Bearer ${token}`)
  })

  it("refuses a missing token with WWW-Authenticate: Bearer", () => refused({}, "Bearer"))

  it("refuses alg none, HMAC confusion, wrong audience or issuer, expired tokens and unknown kids", async () => {
    const invalid = 'Bearer error="invalid_token"'
    const now = Math.floor(Date.now() / 1000)
    const claims = {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: randomUUID(),
      sid: randomUUID(),
      jti: "j",
      iat: now,
      exp: now + 600,
    }
    await refused(bearer(`${b64({ alg: "none", kid: KID, typ: "JWT" })}.${b64(claims)}.`), invalid)
    const jwk = (await (await fetch(jwks.url)).json()) as { keys: Array<unknown> }
    const hmac = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", kid: KID, typ: "JWT" })
      .sign(new TextEncoder().encode(JSON.stringify(jwk.keys[0])))
    await refused(bearer(hmac), invalid)
    await refused(bearer(await sign({}, { aud: "someone-else" })), invalid)
    await refused(bearer(await sign({}, { iss: "https://evil.test" })), invalid)
    await refused(bearer(await sign({}, { exp: now - 60 })), invalid)
    const forged = await new SignJWT({ sid: randomUUID(), jti: "j" })
      .setProtectedHeader({ alg: "EdDSA", kid: "made-up", typ: "JWT" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject(randomUUID())
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(privateKey)
    await refused(bearer(forged), invalid)
    await refused({ authorization: "Basic dXNlcjpwYXNz" }, invalid)
  })

  it.skipIf(!REDIS)(
    "refuses a revoked session's token within 1 s (shared revocation list, no database call)",
    async () => {
      const sid = randomUUID()
      const token = await sign({}, { sid })
      expect((await get("/api/v1/echo/me", bearer(token))).status).toBe(200)
      await Effect.runPromise(
        Effect.flatMap(Effect.service(SessionRevocations), (r) => r.revoke([sid], 60)).pipe(
          Effect.provide(Layer.fresh(SessionRevocations.layer).pipe(Layer.provide(Health.layer))),
        ),
      )
      await eventually(
        "the expected answer",
        async () => (await get("/api/v1/echo/me", bearer(token))).status === 401,
        1_000,
      )
    },
  )
})

describe("permissions through authz", () => {
  const authzHttp = (method: string, path: string, body?: unknown) =>
    fetch(`${authz.url}${path}`, {
      method,
      headers: { ...authz.admin, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })

  it("answers 403 without the permission, then follows a grant and a revocation within 1 s", async () => {
    const user = randomUUID()
    const token = await sign({}, { sub: user })
    const res = await get("/api/v1/echo/items/7", bearer(token))
    expect(res.status).toBe(403)
    expect(((await res.json()) as { code: string }).code).toBe("forbidden")
    const role = (await (
      await authzHttp("POST", "/api/v1/roles", { name: `gw-${randomUUID().slice(0, 8)}`, permissions: ["blog.*"] })
    ).json()) as { id: string }
    expect((await authzHttp("PUT", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
    await eventually(
      "the expected answer",
      async () => (await get("/api/v1/echo/items/7", bearer(token))).status === 200,
      1_000,
    )
    expect((await authzHttp("DELETE", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
    await eventually(
      "the expected answer",
      async () => (await get("/api/v1/echo/items/7", bearer(token))).status === 403,
      1_000,
    )
  })

  it("lets the service answer bad input itself: malformed JSON and a wrong content type are 4xx, never 5xx", async () => {
    const admin = randomUUID()
    expect((await authzHttp("PUT", `/api/v1/users/${admin}/roles/${ADMIN_ROLE_ID}`)).status).toBe(204)
    const token = await sign({}, { sub: admin })
    const post = (body: string, contentType: string) =>
      fetch(`${gateway.url}/api/v1/roles`, {
        method: "POST",
        headers: { ...bearer(token), "content-type": contentType },
        body,
      })
    await eventually(
      "the expected answer",
      async () => (await post('{"name": "x", "permissions": []}', "application/json")).status === 201,
      1_000,
    )
    for (const res of [await post("{not json", "application/json"), await post("name=x", "text/plain")]) {
      expect(res.status).toBeGreaterThanOrEqual(400)
      expect(res.status).toBeLessThan(500)
      expect(res.headers.get("content-type")).toContain("application/problem+json")
    }
    const deep = `${"[".repeat(5_000)}${"]".repeat(5_000)}`
    const nested = await post(deep, "application/json")
    expect(nested.status).toBeGreaterThanOrEqual(400)
    expect(nested.status).toBeLessThan(500)
  })
})

describe("rate limits", () => {
  it("per address per route: 429 with Retry-After and RateLimit-* headers", async () => {
    const statuses: Array<number> = []
    let last: Response | undefined
    for (let i = 0; i < 4; i++) {
      last = await get("/api/v1/echo/limited")
      statuses.push(last.status)
      if (i === 0) expect(last.headers.get("ratelimit-limit")).toBe("3")
    }
    expect(statuses).toEqual([200, 200, 200, 429])
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThan(0)
    expect(last!.headers.get("ratelimit-limit")).toBe("3")
    expect(last!.headers.get("ratelimit-remaining")).toBe("0")
    expect(Number(last!.headers.get("ratelimit-reset"))).toBeGreaterThan(0)
    expect(((await last!.json()) as { code: string }).code).toBe("too_many_requests")
  })

  it("per user: each user has their own budget", async () => {
    const [a, b] = [await sign(), await sign()]
    const statuses = []
    for (let i = 0; i < 3; i++) statuses.push((await get("/api/v1/echo/user-limited", bearer(a))).status)
    expect(statuses).toEqual([200, 200, 429])
    expect((await get("/api/v1/echo/user-limited", bearer(b))).status).toBe(200)
  })
})

describe("CORS", () => {
  it("answers a preflight from an allowed origin at the gateway, refuses others", async () => {
    const before = echo.seen.length
    const ok = await fetch(`${gateway.url}/api/v1/echo/public`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "GET" },
    })
    expect(ok.status).toBe(204)
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example.com")
    expect(ok.headers.get("access-control-allow-methods")).toContain("GET")
    expect(ok.headers.get("access-control-allow-headers")).toContain("authorization")
    const bad = await fetch(`${gateway.url}/api/v1/echo/public`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example.com", "access-control-request-method": "GET" },
    })
    expect(bad.status).toBe(403)
    expect(echo.seen.length).toBe(before)
    const actual = await get("/api/v1/echo/public", { origin: "https://app.example.com" })
    expect(actual.headers.get("access-control-allow-origin")).toBe("https://app.example.com")
    expect(actual.headers.get("access-control-expose-headers")).toContain("x-request-id")
  })
})

describe("upstream failures", () => {
  it("answers 504 gateway_timeout when the upstream is slower than the route's timeout", async () => {
    const started = Date.now()
    const res = await get("/api/v1/echo/slow")
    expect(res.status).toBe(504)
    expect(((await res.json()) as { code: string }).code).toBe("gateway_timeout")
    expect(Date.now() - started).toBeLessThan(1_200)
  })

  it("retries only idempotent requests on connection errors", async () => {
    const count = () => flaky.seen.filter((s) => s.url === "/api/v1/flaky/reset").length
    const before = count()
    const post = await fetch(`${gateway.url}/api/v1/flaky/reset`, { method: "POST" })
    expect(post.status).toBe(503)
    expect(count() - before).toBe(1)
    expect((await get("/api/v1/flaky/ok")).status).toBe(200)
    const between = count()
    const res = await get("/api/v1/flaky/reset")
    expect(res.status).toBe(503)
    expect(count() - between).toBe(3)
  })

  it("answers 503 quickly when an upstream is down, opens its circuit, and recovers when it returns", async () => {
    const first = await get("/api/v1/down/thing")
    expect(first.status).toBe(503)
    expect(first.headers.get("content-type")).toContain("application/problem+json")
    expect(first.headers.get("retry-after")).toBeTruthy()
    expect(((await first.json()) as { code: string }).code).toBe("service_unavailable")
    const started = Date.now()
    const open = await get("/api/v1/down/thing")
    expect(open.status).toBe(503)
    expect(Date.now() - started).toBeLessThan(100)
    expect(
      ((await (await get("/readyz/upstreams")).json()) as { circuits: Record<string, string> }).circuits.down,
    ).toBe("open")
    const back = await startUpstream((_request, response) => {
      response.writeHead(200, { "content-type": "application/json" }).end('{"back":true}')
      return true
    }, downPort)
    try {
      await eventually("the expected answer", async () => (await get("/api/v1/down/thing")).status === 200, 3_000)
    } finally {
      await back.close()
    }
  })
})

describe("OpenAPI and docs", () => {
  it("merges the upstreams' public operations only, with each route's security", async () => {
    const doc = (await (await get("/openapi.json")).json()) as {
      openapi: string
      paths: Record<string, Record<string, { security?: unknown; "x-required-permission"?: string }>>
    }
    expect(doc.openapi).toBe("3.1.0")
    expect(doc.paths["/api/v1/echo/public"]?.get?.security).toEqual([])
    expect(doc.paths["/internal/secret"]).toBeUndefined()
    expect(doc.paths["/api/v1/roles"]?.post?.["x-required-permission"]).toBe("authz.role.create")
    expect(doc.paths["/api/v1/users/me/permissions"]?.get?.security).toEqual([{ bearer: [] }])
  })

  it("serves the API reference and its assets locally", async () => {
    const page = await get("/docs")
    expect(page.status).toBe(200)
    const html = await page.text()
    expect(html).toContain("/docs/swagger-ui-bundle.js")
    expect(html).not.toMatch(/https?:\/\//)
    const bundle = await get("/docs/swagger-ui-bundle.js")
    expect(bundle.status).toBe(200)
    expect(bundle.headers.get("content-type")).toContain("javascript")
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000)
  })

  it("serves its own health and metrics", async () => {
    expect((await get("/healthz")).status).toBe(200)
    expect((await get("/readyz")).status).toBe(200)
    expect((await get("/api/v1/echo/public")).status).toBe(200)
    const metrics = await (await get("/metrics")).text()
    expect(metrics).toContain("gateway_upstream_requests_total")
    // Proxied requests are counted by route template, never by raw path.
    expect(metrics).toMatch(/http_server_requests_total\{[^}]*route="\/api\/v1\/echo\/public"/)
    expect(metrics).toMatch(/http_server_requests_total\{[^}]*route="\/api\/v1\/echo\/items\/\{id\}"/)
    expect(metrics).not.toContain('route="/api/v1/echo/items/42"')
  })
})

describe("connection handling", () => {
  const raw = (
    path: string,
    options: { method?: string; headers?: Record<string, string>; body?: string } = {},
  ): Promise<{ status: number; continued: boolean; body: string }> =>
    new Promise((resolve, reject) => {
      let continued = false
      const req = httpRequest(`${gateway.url}${path}`, { method: options.method ?? "GET", headers: options.headers })
      req.on("continue", () => {
        continued = true
        req.end(options.body)
      })
      req.on("response", (res) => {
        let body = ""
        res.on("data", (chunk) => {
          body += chunk
        })
        res.on("end", () => resolve({ status: res.statusCode ?? 0, continued, body }))
      })
      req.on("error", reject)
      if (options.headers?.expect === undefined) req.end(options.body)
    })

  it("proxies a request carrying an Upgrade header as an ordinary one (no upgrade, header not forwarded)", async () => {
    const answer = await raw("/api/v1/echo/public", {
      headers: { connection: "Upgrade, HTTP2-Settings", upgrade: "h2c" },
    })
    expect(answer.status).toBe(200)
    const seen = (JSON.parse(answer.body) as { headers: Record<string, string> }).headers
    expect(seen.upgrade).toBeUndefined()
  })

  it("refuses before asking for the body: no 100 Continue when the answer is a refusal", async () => {
    // A well-formed token for another audience: refused only after its signature was checked (asynchronously).
    const token = await sign({}, { aud: "someone-else" })
    const answer = await raw("/api/v1/echo/notes", {
      method: "POST",
      headers: {
        expect: "100-continue",
        authorization: `Bearer ${token}`,
        "content-type": "text/plain",
        "content-length": "5",
      },
      body: "hello",
    })
    expect(answer.status).toBe(401)
    expect(answer.continued).toBe(false)
  })

  it("on shutdown answers what is still waiting with 503 within the grace period, then stops", async () => {
    const own = await startGateway({
      manifests: [echoManifest],
      env: {
        ECHO_URL: echo.url,
        JWT_ISSUER: ISSUER,
        JWT_AUDIENCE: AUDIENCE,
        AUTH_JWKS_URL: jwks.url.toString(),
        AUTHZ_GRPC_URL: authz.grpcAddress,
        RATE_LIMIT_IP_PER_MINUTE: "0",
        GATEWAY_ROUTES: JSON.stringify([{ method: "GET", path: "/api/v1/echo/slow", timeoutMs: 10_000 }]),
      },
    })
    try {
      const started = performance.now()
      const pending = fetch(`${own.url}/api/v1/echo/slow?ms=8000`)
      await new Promise((resolve) => setTimeout(resolve, 200))
      const closed = own.close().then(() => performance.now() - started)
      const res = await pending
      const answeredAfter = performance.now() - started
      expect(res.status).toBe(503)
      expect(((await res.json()) as { code: string }).code).toBe("service_unavailable")
      // The harness's grace period is 1 s; the upstream would have answered after 8 s.
      expect(answeredAfter).toBeGreaterThan(1_000)
      expect(answeredAfter).toBeLessThan(3_000)
      expect(await closed).toBeLessThan(5_000)
    } finally {
      await own.close().catch(() => {})
      await sql(`DROP SCHEMA IF EXISTS ${own.schema} CASCADE`)
    }
  })
})
