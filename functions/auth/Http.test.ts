import { Effect } from "effect"
import { createRemoteJWKSet, decodeJwt, jwtVerify } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AuthServiceClient } from "../../proto/gen/auth/v1/auth.ts"
import { SessionRevocations } from "../../shared/access/SessionRevocations.ts"
import * as GrpcClient from "../../shared/GrpcClient.ts"
import { ServiceIdentity } from "../../shared/ServiceIdentity.ts"
import { waitUntil } from "../../shared/testing/busHarness.ts"
import { sql } from "../../shared/testing/harness.ts"
import { Users } from "../identity/Users.ts"
import { delayAfter } from "./LoginThrottle.ts"
import { type AuthUnderTest, type IdentityUnderTest, startAuth, startIdentityGrpc } from "./testing/authApp.ts"

// Auth's HTTP and gRPC servers (port 0) signing in against identity's real gRPC server, both on fresh schemas of the
// real Postgres, throttling and revocations in the real Redis.
let identity: IdentityUnderTest
let auth: AuthUnderTest
let url: string
beforeAll(async () => {
  identity = await startIdentityGrpc()
  auth = await startAuth(identity, { REFRESH_REUSE_GRACE_SECONDS: "1" })
  url = auth.url
}, 60_000)
afterAll(async () => {
  await auth?.close()
  await identity?.running.close()
})

const unique = (label: string) => `${label}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`
const PASSWORD = "correct horse battery"

const post = (path: string, body?: unknown, headers: Record<string, string> = {}, base = url) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })

interface Tokens {
  access_token: string
  refresh_token: string
  token_type: string
  expires_in: number
}

const register = async (email = unique("user"), base = url) => {
  const res = await post("/api/v1/auth/register", { email, password: PASSWORD, name: "Grace" }, {}, base)
  expect(res.status).toBe(201)
  return { email, user: (await res.json()) as { id: string } }
}

const login = async (email: string, password = PASSWORD, base = url) => {
  const res = await post("/api/v1/auth/login", { email, password }, {}, base)
  expect(res.status).toBe(200)
  return (await res.json()) as Tokens
}

const problem = async (res: Response) => {
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  return (await res.json()) as { status: number; code: string; errors?: Array<{ path: string; message: string }> }
}

const isRevoked = (sid: string) =>
  Effect.runPromise(
    Effect.flatMap(Effect.service(SessionRevocations), (r) => r.isRevoked(sid)).pipe(
      Effect.provideContext(auth.running.context),
    ),
  )

const validate = (token: string) =>
  Effect.runPromise(
    Effect.gen(function* () {
      const client = yield* GrpcClient.make(AuthServiceClient, { address: auth.grpcAddress })
      return yield* client.call("validateToken", { token })
    }).pipe(Effect.scoped, Effect.provide(ServiceIdentity.layerDev("gateway"))),
  )

describe("auth: register and login", () => {
  it("register creates an unverified account; login returns an EdDSA access token with every claim", async () => {
    const { email, user } = await register()
    const tokens = await login(email.toUpperCase())
    expect(tokens.token_type).toBe("Bearer")
    expect(tokens.expires_in).toBe(900)
    expect(tokens.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const jwks = createRemoteJWKSet(new URL(`${url}/.well-known/jwks.json`))
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer: auth.config.jwtIssuer,
      audience: auth.config.jwtAudience,
    })
    expect(protectedHeader.alg).toBe("EdDSA")
    expect(protectedHeader.kid).toMatch(/.+/)
    expect(payload.sub).toBe(user.id)
    for (const claim of ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]) expect(payload).toHaveProperty(claim)
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(900)
  })

  it("register refuses bad input with every field listed, and a taken email with 409 email_taken", async () => {
    const bad = await post("/api/v1/auth/register", { email: "nope", password: "short", name: " " })
    expect(bad.status).toBe(400)
    const body = await problem(bad)
    expect(body.code).toBe("validation_failed")
    expect(body.errors?.map((e) => e.path).sort()).toEqual(["email", "name", "password"])
    const { email } = await register()
    const taken = await post("/api/v1/auth/register", { email: email.toUpperCase(), password: PASSWORD, name: "X" })
    expect(taken.status).toBe(409)
    expect((await problem(taken)).code).toBe("email_taken")
  })

  it("a NUL character in sign-in or registration input is a 400 at auth's edge, never a 503", async () => {
    for (const [path, body] of [
      ["/api/v1/auth/login", { email: "a\u0000@example.com", password: PASSWORD }],
      ["/api/v1/auth/register", { email: unique("nul"), password: PASSWORD, name: "Ad\u0000min" }],
    ] as const) {
      const res = await post(path, body)
      expect(res.status, path).toBe(400)
      expect(await problem(res)).toMatchObject({ code: "validation_failed", errors: [{ path: "body" }] })
    }
  })

  it("wrong password and unknown email get the same 401 invalid_credentials", async () => {
    const { email } = await register()
    const wrong = await post("/api/v1/auth/login", { email, password: "wrong horse battery" })
    const unknown = await post("/api/v1/auth/login", { email: unique("nobody"), password: PASSWORD })
    expect(wrong.status).toBe(401)
    expect(unknown.status).toBe(401)
    const [a, b] = [await problem(wrong), await problem(unknown)]
    expect(a).toEqual(b)
    expect(a.code).toBe("invalid_credentials")
  })

  it("malformed bodies are 400 validation_failed, never 5xx", async () => {
    for (const [path, body] of [
      ["/api/v1/auth/login", { email: 1 }],
      ["/api/v1/auth/login", "{not json"],
      ["/api/v1/auth/refresh", {}],
      ["/api/v1/auth/refresh", { refresh_token: "x".repeat(300) }],
      ["/api/v1/auth/logout", { refresh_token: 42 }],
      ["/api/v1/auth/register", []],
    ] as const) {
      const res = await fetch(`${url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      })
      expect(res.status, `${path} ${JSON.stringify(body)}`).toBe(400)
      expect((await problem(res)).code).toBe("validation_failed")
    }
  })
})

describe("auth: sessions", () => {
  it("refresh rotates; the superseded token inside the grace window still rotates without revoking", async () => {
    const { email } = await register()
    const first = await login(email)
    const second = await post("/api/v1/auth/refresh", { refresh_token: first.refresh_token })
    expect(second.status).toBe(200)
    const rotated = (await second.json()) as Tokens
    expect(rotated.refresh_token).not.toBe(first.refresh_token)
    // A second tab refreshing with the same old token at once: allowed, the family lives on.
    const racing = await post("/api/v1/auth/refresh", { refresh_token: first.refresh_token })
    expect(racing.status).toBe(200)
    const sid = decodeJwt(rotated.access_token).sid as string
    expect(await isRevoked(sid)).toBe(false)
  })

  it("a superseded token reused after the grace window revokes the whole family: 401 token_reused", async () => {
    const { email } = await register()
    const first = await login(email)
    const rotated = (await (
      await post("/api/v1/auth/refresh", { refresh_token: first.refresh_token })
    ).json()) as Tokens
    await new Promise((resolve) => setTimeout(resolve, 1_300))
    const reused = await post("/api/v1/auth/refresh", { refresh_token: first.refresh_token })
    expect(reused.status).toBe(401)
    expect((await problem(reused)).code).toBe("token_reused")
    // The newest token of the family is dead too, and the edge refuses the family's access tokens.
    const latest = await post("/api/v1/auth/refresh", { refresh_token: rotated.refresh_token })
    expect(latest.status).toBe(401)
    expect((await problem(latest)).code).toBe("unauthorized")
    expect(await isRevoked(decodeJwt(rotated.access_token).sid as string)).toBe(true)
    expect((await validate(rotated.access_token)).reason).toBe("revoked")
  })

  it("logout ends the session: refresh fails and its access token is refused at once", async () => {
    const { email } = await register()
    const tokens = await login(email)
    expect((await validate(tokens.access_token)).valid).toBe(true)
    const out = await post("/api/v1/auth/logout", { refresh_token: tokens.refresh_token })
    expect(out.status).toBe(204)
    expect((await post("/api/v1/auth/refresh", { refresh_token: tokens.refresh_token })).status).toBe(401)
    expect((await validate(tokens.access_token)).valid).toBe(false)
    const bearer = await post("/api/v1/auth/logout-all", undefined, { authorization: `Bearer ${tokens.access_token}` })
    expect(bearer.status).toBe(401)
    expect(bearer.headers.get("www-authenticate")).toContain("Bearer")
    // Logging out again, or with an unknown token, is not an error.
    expect((await post("/api/v1/auth/logout", { refresh_token: tokens.refresh_token })).status).toBe(204)
    expect((await post("/api/v1/auth/logout", { refresh_token: "unknown" })).status).toBe(204)
  })

  it("logout-all ends every session of the user and needs a bearer token", async () => {
    const { email } = await register()
    const [a, b] = [await login(email), await login(email)]
    expect((await post("/api/v1/auth/logout-all")).status).toBe(401)
    const res = await post("/api/v1/auth/logout-all", undefined, { authorization: `Bearer ${a.access_token}` })
    expect(res.status).toBe(204)
    for (const tokens of [a, b]) {
      expect((await post("/api/v1/auth/refresh", { refresh_token: tokens.refresh_token })).status).toBe(401)
      expect((await validate(tokens.access_token)).reason).toBe("revoked")
    }
  })

  it("a password reset in identity ends every session (through identity's events)", async () => {
    const { email, user } = await register()
    const tokens = await login(email)
    const runUsers = <A, E>(f: (users: Users["Service"]) => Effect.Effect<A, E>) =>
      Effect.runPromise(Effect.flatMap(Effect.service(Users), f).pipe(Effect.provideContext(identity.running.context)))
    await runUsers((users) => users.requestPasswordReset(email))
    const [mail] = await sql(
      `SELECT text FROM ${identity.db.schema}.mail_outbox WHERE "to" = $1 AND subject ILIKE '%reset%' ORDER BY created_at DESC`,
      [email],
    )
    const token = /reset-password\?token=([A-Za-z0-9_-]+)/.exec(String(mail?.text))?.[1]
    expect(token).toBeDefined()
    await runUsers((users) => users.confirmPasswordReset(token!, "a brand new password"))
    await Effect.runPromise(
      waitUntil(
        "the session revoked after the reset",
        Effect.promise(() => isRevoked(decodeJwt(tokens.access_token).sid as string)),
      ),
    )
    expect((await post("/api/v1/auth/refresh", { refresh_token: tokens.refresh_token })).status).toBe(401)
    const rows = await sql(`SELECT revoked_reason FROM ${auth.config.dbSchema}.sessions WHERE user_id = $1`, [user.id])
    expect(rows.map((r) => r.revoked_reason)).toEqual(["password_reset"])
  })

  it("sign-in events go through the outbox with actor, target, ip and request id", async () => {
    const { email, user } = await register()
    await post("/api/v1/auth/login", { email, password: "wrong horse battery" }, { "x-request-id": "req-fail-1" })
    await post("/api/v1/auth/login", { email, password: PASSWORD }, { "x-request-id": "req-ok-1" })
    const rows = await sql(`SELECT event FROM ${auth.config.dbSchema}.outbox WHERE key = $1 ORDER BY created_at`, [
      user.id,
    ])
    const events = rows.map((r) => (typeof r.event === "string" ? JSON.parse(r.event) : r.event))
    const failed = events.find((e) => e.type === "auth.login.failed")
    const succeeded = events.find((e) => e.type === "auth.login.succeeded")
    expect(failed.data).toMatchObject({ actor: null, target: user.id, requestId: "req-fail-1", userId: user.id })
    expect(failed.data.ip).toMatch(/127\.0\.0\.1/)
    expect(succeeded.data).toMatchObject({ actor: user.id, target: user.id, requestId: "req-ok-1" })
  })
})

describe("auth: brute-force throttling", () => {
  it("the delay grows, is capped at 15 minutes, and fewer than 100 failures fit in an hour", () => {
    const options = { freeAttempts: 5, maxDelaySeconds: 900, ipLimitPerMinute: 60 }
    expect(delayAfter(4, options)).toBe(0)
    expect(delayAfter(5, options)).toBe(1)
    expect(delayAfter(8, options)).toBe(8)
    expect(delayAfter(40, options)).toBe(900)
    expect(delayAfter(40, { ...options, maxDelaySeconds: 7200 })).toBe(900)
    // An attacker retrying the moment each delay ends: attempts within one hour.
    let elapsed = 0
    let failures = 0
    while (elapsed < 3600) {
      failures += 1
      elapsed += delayAfter(failures, options)
    }
    expect(failures).toBeLessThanOrEqual(100)
  })

  it("after the free attempts even the right password gets 429 with Retry-After until the delay ends", async () => {
    const strict = await startAuth(identity, { LOGIN_FREE_ATTEMPTS: "2" })
    try {
      const { email } = await register(unique("locked"), strict.url)
      for (let i = 0; i < 2; i++) {
        const res = await post("/api/v1/auth/login", { email, password: "wrong horse battery" }, {}, strict.url)
        expect(res.status).toBe(401)
      }
      // The second failure starts a 1 s delay (doubling with each further failure, capped at 15 minutes).
      const throttled = await post("/api/v1/auth/login", { email, password: PASSWORD }, {}, strict.url)
      expect(throttled.status).toBe(429)
      expect(throttled.headers.get("retry-after")).toBe("1")
      expect((await problem(throttled)).code).toBe("too_many_requests")
      // Another account is not affected; the owner gets in once the delay is over.
      await login((await register(unique("other"), strict.url)).email, PASSWORD, strict.url)
      await new Promise((resolve) => setTimeout(resolve, 1_100))
      await login(email, PASSWORD, strict.url)
    } finally {
      await strict.close()
    }
  })

  it("a burst of parallel guesses gets one password check at a time: the rest are 429 at once", async () => {
    const strict = await startAuth(identity, { LOGIN_FREE_ATTEMPTS: "2" })
    try {
      const { email } = await register(unique("burst"), strict.url)
      const statuses = await Promise.all(
        Array.from({ length: 40 }, () =>
          post("/api/v1/auth/login", { email, password: "wrong horse battery" }, {}, strict.url).then((r) => r.status),
        ),
      )
      const checked = statuses.filter((status) => status === 401).length
      expect(statuses.filter((status) => status !== 401 && status !== 429)).toEqual([])
      // Every guess that reached identity was counted before the next one ran: the free attempts and at most one more.
      expect(checked).toBeGreaterThanOrEqual(1)
      expect(checked).toBeLessThanOrEqual(3)
    } finally {
      await strict.close()
    }
  })

  it("refuses throttle settings that would break the contract, listing each at start", async () => {
    const error = await startAuth(identity, {
      LOGIN_MAX_DELAY_SECONDS: "5",
      LOGIN_FREE_ATTEMPTS: "0",
      REFRESH_REUSE_GRACE_SECONDS: "x",
    }).then(
      () => undefined,
      (e: unknown) => String(e instanceof Error ? e.message : e) + String((e as { cause?: unknown }).cause ?? ""),
    )
    for (const key of ["LOGIN_MAX_DELAY_SECONDS", "LOGIN_FREE_ATTEMPTS", "REFRESH_REUSE_GRACE_SECONDS"])
      expect(error).toContain(key)
  })

  it("one address over its per-minute limit gets 429 with Retry-After", async () => {
    const limited = await startAuth(identity, { LOGIN_IP_LIMIT_PER_MINUTE: "3" })
    try {
      const statuses: Array<number> = []
      let retryAfter: string | null = null
      let limitHeaders: Record<string, string | null> = {}
      for (let i = 0; i < 5; i++) {
        const res = await post("/api/v1/auth/login", { email: unique("ip"), password: PASSWORD }, {}, limited.url)
        statuses.push(res.status)
        if (res.status === 429) {
          retryAfter = res.headers.get("retry-after")
          limitHeaders = {
            limit: res.headers.get("ratelimit-limit"),
            remaining: res.headers.get("ratelimit-remaining"),
            reset: res.headers.get("ratelimit-reset"),
          }
        }
      }
      expect(statuses).toContain(429)
      expect(Number(retryAfter)).toBeGreaterThan(0)
      expect(Number(retryAfter)).toBeLessThanOrEqual(60)
      expect(limitHeaders).toEqual({ limit: "3", remaining: "0", reset: retryAfter })
    } finally {
      await limited.close()
    }
  })
})
