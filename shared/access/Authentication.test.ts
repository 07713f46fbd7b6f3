import { randomUUID } from "node:crypto"
import { Writable } from "node:stream"
import { Effect, Layer, Logger, Schema } from "effect"
import type { HttpServer } from "effect/http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Health } from "../Health.ts"
import * as Logging from "../Logging.ts"
import { KernelProblems } from "../OpenApiContract.ts"
import { Actor } from "../RequestContext.ts"
import * as Server from "../Server.ts"
import { baseUrl, type Running, start } from "../testing/harness.ts"
import { serveJwks } from "../testing/jwksServer.ts"
import * as Authentication from "./Authentication.ts"
import { CurrentUser } from "./Authentication.ts"
import { SessionRevocations } from "./SessionRevocations.ts"

// A one-endpoint API behind the middleware, served for real, with keys made here and a JWKS on node:http.
class WhoApi extends HttpApiGroup.make("who")
  .add(
    HttpApiEndpoint.get("whoami", "/whoami", {
      success: Schema.Struct({ userId: Schema.String, sessionId: Schema.String, actor: Schema.String }),
    }),
  )
  .middleware(Authentication.Authentication) {}

class TestApi extends HttpApi.make("test").add(WhoApi).middleware(KernelProblems) {}

const WhoHttp = HttpApiBuilder.group(TestApi, "who", (handlers) =>
  handlers.handle("whoami", () =>
    Effect.gen(function* () {
      const user = yield* CurrentUser
      yield* Effect.logInfo("whoami handled")
      return { userId: user.userId, sessionId: user.sessionId, actor: yield* Actor }
    }),
  ),
)

const issuer = "https://auth.kernel-test"
const audience = "kernel-test"
const lines: Array<Record<string, unknown>> = []
const destination = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line))
    done()
  },
})

const appLayer = (jwksUrl: URL) =>
  Server.serve(
    HttpApiBuilder.layer(TestApi).pipe(
      Layer.provide(WhoHttp),
      Layer.provide(Server.validationProblems),
      Layer.provide(Authentication.layer({ issuer, audience, jwks: { url: jwksUrl, cooldownMs: 0 } })),
    ),
    { port: 0, api: TestApi },
  ).pipe(
    Layer.provideMerge(SessionRevocations.layer),
    Layer.provideMerge(Health.layer),
    Layer.provide(Logger.layer([Logging.fromPino(Logging.makePino({ service: "test", level: "info", destination }))])),
  )

type Key = { kid: string; privateKey: CryptoKey; jwk: JWK }
const newKey = async (): Promise<Key> => {
  const { publicKey, privateKey } = await generateKeyPair("EdDSA")
  const kid = randomUUID()
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "EdDSA", use: "sig" } }
}

const sign = (key: Key, claims: { sub?: string; sid?: string; aud?: string } = {}) =>
  new SignJWT({ sid: claims.sid ?? randomUUID() })
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "JWT" })
    .setIssuer(issuer)
    .setAudience(claims.aud ?? audience)
    .setSubject(claims.sub ?? "user-1")
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime("5m")
    .sign(key.privateKey)

let published: Array<Key>
let jwks: Awaited<ReturnType<typeof serveJwks>>
let app: Running<HttpServer.HttpServer | SessionRevocations>
let url: string

beforeAll(async () => {
  published = [await newKey()]
  jwks = await serveJwks(async () => ({ keys: published.map((k) => k.jwk) }))
  app = (await start(appLayer(jwks.url))) as never
  url = baseUrl(app)
})

afterAll(async () => {
  await app?.close()
  await jwks?.close()
})

const whoami = (token?: string) =>
  fetch(`${url}/whoami`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })

describe("Authentication middleware", () => {
  it("provides CurrentUser and Actor from a valid token and annotates logs with user_id", async () => {
    const sid = randomUUID()
    const res = await whoami(await sign(published[0]!, { sub: "user-42", sid }))
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ userId: "user-42", sessionId: sid, actor: "user-42" })
    expect(lines.find((l) => l.msg === "whoami handled")).toMatchObject({ user_id: "user-42" })
  })

  it("refuses a missing or bad token with 401 unauthorized and a Bearer challenge, never echoing the token", async () => {
    const missing = await whoami()
    expect(missing.status).toBe(401)
    expect(missing.headers.get("www-authenticate")).toBe("Bearer")
    expect(missing.headers.get("content-type")).toBe("application/problem+json")
    expect(await missing.json()).toMatchObject({ status: 401, code: "unauthorized" })

    const wrongAudience = await sign(published[0]!, { aud: "someone-else" })
    for (const token of ["garbage-token-value", wrongAudience]) {
      const res = await whoami(token)
      expect(res.status).toBe(401)
      expect(res.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"')
      const body = await res.text()
      expect(body).not.toContain(token)
      expect(JSON.parse(body)).toMatchObject({ code: "unauthorized" })
    }
    expect(JSON.stringify(lines)).not.toContain(wrongAudience)
  })

  it("refuses a token of a revoked session", async () => {
    const sid = randomUUID()
    const token = await sign(published[0]!, { sid })
    expect((await whoami(token)).status).toBe(200)
    await Effect.runPromise(
      Effect.flatMap(Effect.service(SessionRevocations), (r) => r.revoke([sid], 60)).pipe(
        Effect.provideContext(app.context),
      ),
    )
    const res = await whoami(token)
    expect(res.status).toBe(401)
    expect((await res.json()) as { code: string }).toMatchObject({ code: "unauthorized" })
  })

  it("fetches the JWKS again for an unknown kid (a rotated key) and caches it otherwise", async () => {
    const before = jwks.fetches()
    await whoami(await sign(published[0]!))
    expect(jwks.fetches()).toBe(before)
    const rotated = await newKey()
    published = [rotated, ...published]
    expect((await whoami(await sign(rotated))).status).toBe(200)
    expect(jwks.fetches()).toBe(before + 1)
    const stranger = await newKey()
    expect((await whoami(await sign(stranger))).status).toBe(401)
  })

  it("answers 503 service_unavailable when the JWKS cannot be fetched", async () => {
    const gone = await serveJwks(async () => ({ keys: [] }))
    await gone.close()
    const down = await start(appLayer(gone.url))
    try {
      const res = await fetch(`${baseUrl(down)}/whoami`, {
        headers: { authorization: `Bearer ${await sign(published[0]!)}` },
      })
      expect(res.status).toBe(503)
      expect(await res.json()).toMatchObject({ code: "service_unavailable" })
    } finally {
      await down.close()
    }
  })
})

describe("authenticator", () => {
  it("reuses a session's 'not revoked' answer for at most unrevokedMemoMs; without it asks every time", async () => {
    const sid = randomUUID()
    const token = await sign(published[0]!, { sid })
    const keys = Authentication.remoteKeys({ url: jwks.url, cooldownMs: 0 })
    const outcome = await Effect.runPromise(
      Effect.gen(function* () {
        const revocations = yield* SessionRevocations
        const exact = yield* Authentication.authenticator(keys, { issuer, audience })
        const remembering = yield* Authentication.authenticator(keys, { issuer, audience, unrevokedMemoMs: 300 })
        yield* exact(token)
        yield* remembering(token)
        yield* revocations.revoke([sid], 60)
        const refusedAtOnce = yield* Effect.flip(exact(token))
        const stillRemembered = yield* remembering(token)
        yield* Effect.sleep("350 millis")
        const refusedAfter = yield* Effect.flip(remembering(token))
        return { refusedAtOnce, stillRemembered, refusedAfter }
      }).pipe(Effect.provide(SessionRevocations.layer.pipe(Layer.provide(Health.layer)))),
    )
    expect(outcome.refusedAtOnce).toMatchObject({ _tag: "Refused", reason: "revoked" })
    expect(outcome.stillRemembered.sid).toBe(sid)
    expect(outcome.refusedAfter).toMatchObject({ _tag: "Refused", reason: "revoked" })
  })
})

describe("remoteKeys", () => {
  // Node's bundled undici (the global fetch, Headers) costs a cold start 20-90 ms of one core; a signed-in route's
  // first answer fetches the JWKS, so the fetch must not load it. Checked in a fresh process: this one has loaded it.
  it("resolves a key from the JWKS without loading Node's fetch (undici)", async () => {
    const script = `
      const { createServer } = process.getBuiltinModule("node:http")
      import { Effect } from "effect"
      import { exportJWK, generateKeyPair } from "jose"
      import { remoteKeys } from "./shared/access/Authentication.ts"
      const { publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true })
      const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "EdDSA", use: "sig" }
      const server = createServer((_, res) => res.end(JSON.stringify({ keys: [jwk] })))
      await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
      const url = new URL("http://127.0.0.1:" + server.address().port + "/.well-known/jwks.json")
      const found = await Effect.runPromise(remoteKeys({ url })("k1"))
      server.close()
      console.log(JSON.stringify({ found: found._tag, undici: process.moduleLoadList.filter((m) => m.includes("undici")) }))
    `
    const { execFile } = await import("node:child_process")
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ["--input-type=module", "-e", script],
        { cwd: `${import.meta.dirname}/../..` },
        (e, stdout, stderr) => (e ? reject(new Error(`${e.message}\n${stderr}`)) : resolve(stdout)),
      ),
    )
    expect(JSON.parse(out)).toEqual({ found: "Some", undici: [] })
  })
})
