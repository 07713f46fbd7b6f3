import { randomUUID } from "node:crypto"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Db } from "../../shared/Db.ts"
import { defineModule } from "../../shared/Module.ts"
import { Outbox } from "../../shared/Outbox.ts"
import * as PgEventBus from "../../shared/PgEventBus.ts"
import { serviceDb } from "../../shared/testing/busHarness.ts"
import { sql } from "../../shared/testing/harness.ts"
import { type JwksServer, serveJwks } from "../../shared/testing/jwksServer.ts"
import { type GatewayUnderTest, startGateway } from "./testing/gatewayHarness.ts"
import { startUpstream, type TestUpstream } from "./testing/upstream.ts"

// The embedded default: no Redis. Revoked sessions reach the gateway as auth's events through the Postgres-backed
// bus (the gateway's own schema holds the inbox), and rate limits count in memory.
const ISSUER = "https://auth.test"
const AUDIENCE = "platform-test"
const KID = "embedded-key"

const echoManifest = defineModule({
  name: "echo",
  version: "0.0.0",
  description: "test upstream",
  ports: { http: 1 },
  dependsOn: [],
  routes: [{ method: "GET", path: "/api/v1/echo/me", auth: "user" }],
  permissions: [],
  events: { publishes: [], consumes: [] },
  migrations: [],
})

const scope = Scope.makeUnsafe()
let auth: Db["Service"]
let gateway: GatewayUnderTest
let echo: TestUpstream
let jwks: JwksServer
let privateKey: CryptoKey

beforeAll(async () => {
  const pair = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true })
  privateKey = pair.privateKey as CryptoKey
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: KID, alg: "EdDSA", use: "sig" }
  jwks = await serveJwks(async () => ({ keys: [jwk] }))
  auth = await Effect.runPromise(Scope.provide(serviceDb("t_auth"), scope))
  echo = await startUpstream((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" }).end("{}")
    return true
  })
  gateway = await startGateway({
    manifests: [echoManifest],
    bus: PgEventBus.layer({ schemaOf: () => auth.schema, pollInterval: "50 millis" }),
    env: {
      REDIS_URL: undefined,
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      AUTH_JWKS_URL: jwks.url.toString(),
      ECHO_URL: echo.url,
      RATE_LIMIT_USER_PER_MINUTE: "3",
    },
  })
})

afterAll(async () => {
  await gateway?.close()
  await Promise.all([echo?.close(), jwks?.close()])
  await Effect.runPromise(Scope.close(scope, Exit.void))
  if (gateway) await sql(`DROP SCHEMA IF EXISTS ${gateway.schema} CASCADE`)
})

const sign = (sid: string, sub = randomUUID()) =>
  new SignJWT({ sid, jti: randomUUID() })
    .setProtectedHeader({ alg: "EdDSA", kid: KID, typ: "JWT" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(privateKey)

const me = (token: string) =>
  fetch(`${gateway.url}/api/v1/echo/me`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status)

describe("the gateway without Redis", () => {
  it("refuses a session revoked by auth within 1 s, from auth's events (no call per request)", async () => {
    const sid = randomUUID()
    const token = await sign(sid)
    expect(await me(token)).toBe(200)
    // auth's outbox (topic auth.events) on the test schema.
    const outbox = await Effect.runPromise(
      Scope.provide(
        Effect.map(Layer.build(Outbox.layer("auth").pipe(Layer.provide(Layer.succeed(Db, auth)))), (context) =>
          Context.get(context, Outbox),
        ),
        scope,
      ),
    )
    const started = Date.now()
    await Effect.runPromise(
      auth.transaction(
        outbox.publish({
          type: "auth.session.revoked",
          subject: "user-1",
          data: { sessionId: sid, userId: "user-1", reason: "logout", ttlSeconds: 900 },
        }),
      ),
    )
    while ((await me(token)) !== 401) {
      expect(Date.now() - started).toBeLessThan(5_000)
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(await me(await sign(randomUUID()))).toBe(200)
  })

  it("limits each user in memory", async () => {
    const token = await sign(randomUUID())
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push(await me(token))
    expect(statuses).toEqual([200, 200, 200, 429])
  })
})
