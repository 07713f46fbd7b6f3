import { createPublicKey, randomUUID } from "node:crypto"
import { Clock, Effect } from "effect"
import { generateKeyPair, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SessionRevocations } from "../../shared/access/SessionRevocations.ts"
import { sql } from "../../shared/testing/harness.ts"
import { SigningKeys } from "../auth/SigningKeys.ts"
import { Tokens } from "../auth/Tokens.ts"
import { shiftableClock, tokenOptions } from "../auth/testing/authHarness.ts"
import { type IdentityUnderTest, startIdentity } from "./testing/identityHarness.ts"
import type { User } from "./User.ts"
import { Users } from "./Users.ts"

// The signed-in routes with tokens issued by auth's real code and verified through its JWKS over HTTP.
let identity: IdentityUnderTest
beforeAll(async () => {
  identity = await startIdentity()
})
afterAll(() => identity?.close())

const time = shiftableClock()
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

const inApp = <A, E>(effect: Effect.Effect<A, E, Users | SessionRevocations>) =>
  Effect.runPromise(effect.pipe(Effect.provideContext(identity.app.context)))
const inAuth = <A, E>(effect: Effect.Effect<A, E, Tokens | SigningKeys>) =>
  Effect.runPromise(effect.pipe(Effect.provideContext(identity.auth.context)))

/** A user with a password and a token of a new session of theirs. */
const signedIn = async (options: { readonly password?: string | null; readonly verified?: boolean } = {}) => {
  const email = `me-${randomUUID()}@example.com`
  const password = options.password === undefined ? "the current secret" : options.password
  const user = await inApp(
    Effect.flatMap(Effect.service(Users), (users) =>
      users.create({ email, name: "Ada", ...(password === null ? {} : { password }) }),
    ),
  )
  const sid = randomUUID()
  const token = await issue(user.id, sid)
  return { user, email, sid, token }
}

const issue = (sub: string, sid: string) =>
  inAuth(Effect.flatMap(Effect.service(Tokens), (tokens) => tokens.issueAccessToken({ sub, sid }))).then(
    (issued) => issued.token,
  )

const call = (method: string, path: string, token: string | undefined, body?: unknown) =>
  fetch(`${identity.url}${path}`, {
    method,
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })

const problem = async (res: Response) => {
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  return (await res.json()) as { status: number; code: string; errors?: Array<{ path: string; message: string }> }
}

const eventsOf = (userId: string) =>
  sql(
    `SELECT event->>'type' AS type, event->'data' AS data FROM ${identity.db.schema}.outbox WHERE key = $1 ORDER BY seq`,
    [userId],
  ) as Promise<Array<{ type: string; data: Record<string, unknown> }>>

const mailsTo = (to: string) =>
  sql(`SELECT text FROM ${identity.db.schema}.mail_outbox WHERE "to" = $1 ORDER BY created_at`, [to]) as Promise<
    Array<{ text: string }>
  >

describe("identity signed-in routes", () => {
  it("GET /users/me answers the caller's account; PATCH changes the name and publishes who did it", async () => {
    const { user, token } = await signedIn()
    const me = await call("GET", "/api/v1/users/me", token)
    expect(me.status).toBe(200)
    expect(await me.json()).toMatchObject({ id: user.id, name: "Ada", status: "active", emailVerified: false })

    const patched = await call("PATCH", "/api/v1/users/me", token, { name: "Ada Lovelace" })
    expect(patched.status).toBe(200)
    expect(await patched.json()).toMatchObject({ id: user.id, name: "Ada Lovelace" })
    const updated = (await eventsOf(user.id)).find((e) => e.type === "identity.user.updated")
    expect(updated?.data).toMatchObject({ userId: user.id, changes: { name: "Ada Lovelace" }, actor: user.id })
  })

  it("refuses missing, garbage, expired, wrong-audience, alg:none, HS256 and unknown-kid tokens with 401", async () => {
    const { user, sid, token } = await signedIn()
    const [header, payload] = token.split(".")
    const { kid } = JSON.parse(Buffer.from(header!, "base64url").toString()) as { kid: string }

    time.shift("-20 minutes")
    const expired = await inAuth(
      Effect.flatMap(Effect.service(Tokens), (tokens) => tokens.issueAccessToken({ sub: user.id, sid })).pipe(
        Effect.provideService(Clock.Clock, time.clock),
      ),
    )
      .then((issued) => issued.token)
      .finally(time.reset)
    const wrongAudience = await inAuth(
      Effect.flatMap(Effect.service(Tokens), (tokens) => tokens.issueAccessToken({ sub: user.id, sid })).pipe(
        Effect.provide(Tokens.layer({ ...tokenOptions, audience: "someone-else" })),
      ),
    ).then((issued) => issued.token)
    // Auth itself refuses them for the intended reasons.
    const reasonOf = (bad: string) =>
      inAuth(
        Effect.flatMap(Effect.service(Tokens), (tokens) => Effect.flip(tokens.verifyAccessToken(bad))).pipe(
          Effect.map((error) => (error._tag === "InvalidToken" ? error.reason : error._tag)),
        ),
      )
    expect([await reasonOf(expired), await reasonOf(wrongAudience)]).toEqual(["expired", "wrong_audience"])
    const none = `${b64({ alg: "none", kid, typ: "JWT" })}.${payload}.`
    // Key confusion: HMAC-signed with the published public key as the secret.
    const jwks = await inAuth(Effect.flatMap(Effect.service(SigningKeys), (keys) => keys.jwks()))
    const pem = createPublicKey({ key: jwks.keys[0] as never, format: "jwk" }).export({ type: "spki", format: "pem" })
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString()) as Record<string, unknown>
    const hs256 = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256", kid, typ: "JWT" })
      .sign(new TextEncoder().encode(String(pem)))
    const stranger = await generateKeyPair("EdDSA")
    const unknownKid = await new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid: "not-a-published-kid", typ: "JWT" })
      .sign(stranger.privateKey)

    const missing = await call("GET", "/api/v1/users/me", undefined)
    expect(missing.status).toBe(401)
    expect(missing.headers.get("www-authenticate")).toBe("Bearer")
    expect((await problem(missing)).code).toBe("unauthorized")
    for (const [name, bad] of Object.entries({ garbage: "garbage", expired, wrongAudience, none, hs256, unknownKid })) {
      const res = await call("GET", "/api/v1/users/me", bad)
      expect(res.status, name).toBe(401)
      expect(res.headers.get("www-authenticate"), name).toMatch(/^Bearer\b/)
      expect((await problem(res)).code, name).toBe("unauthorized")
    }
    expect((await call("GET", "/api/v1/users/me", token)).status).toBe(200)
  })

  it("refuses a token whose session was revoked (through Redis), and checks the token before the body", async () => {
    const { sid, token } = await signedIn()
    await inApp(Effect.flatMap(Effect.service(SessionRevocations), (revocations) => revocations.revoke([sid], 60)))
    const res = await call("GET", "/api/v1/users/me", token)
    expect(res.status).toBe(401)
    expect((await problem(res)).code).toBe("unauthorized")
    expect((await call("PATCH", "/api/v1/users/me", undefined, { name: 42 })).status).toBe(401)
  })

  it("bad input is a 400 validation_failed listing each field", async () => {
    const { token } = await signedIn()
    const patch = await call("PATCH", "/api/v1/users/me", token, { name: "", status: "active" })
    expect(patch.status).toBe(400)
    const body = await problem(patch)
    expect(body.code).toBe("validation_failed")
    expect(body.errors?.map((e) => e.path).sort()).toEqual(["name", "status"])

    const change = await call("POST", "/api/v1/users/me/password", token, { newPassword: "short" })
    expect(change.status).toBe(400)
    expect((await problem(change)).errors?.map((e) => e.path).sort()).toEqual(["currentPassword", "newPassword"])
    const long = await call("POST", "/api/v1/users/me/password", token, {
      currentPassword: "the current secret",
      newPassword: "x".repeat(129),
    })
    expect((await problem(long)).errors?.map((e) => e.path)).toEqual(["newPassword"])
  })

  it("changing the password needs the current one (401 invalid_credentials), then ends the other sessions", async () => {
    const { user, email, sid, token } = await signedIn()
    const wrong = await call("POST", "/api/v1/users/me/password", token, {
      currentPassword: "not the secret",
      newPassword: "a brand new secret",
    })
    expect(wrong.status).toBe(401)
    expect((await problem(wrong)).code).toBe("invalid_credentials")
    expect((await eventsOf(user.id)).map((e) => e.type)).not.toContain("identity.password.changed")

    const ok = await call("POST", "/api/v1/users/me/password", token, {
      currentPassword: "the current secret",
      newPassword: "a brand new secret",
    })
    expect(ok.status).toBe(204)
    const changed = (await eventsOf(user.id)).find((e) => e.type === "identity.password.changed")
    expect(changed?.data).toMatchObject({ userId: user.id, keepSessionId: sid, actor: user.id })
    const check = (password: string) =>
      inApp(Effect.flatMap(Effect.service(Users), (users) => users.verifyCredentials(email, password)))
    expect((await check("a brand new secret"))._tag).toBe("Some")
    expect((await check("the current secret"))._tag).toBe("None")
  })

  it("five wrong current passwords in an hour, then 429 with Retry-After even for the right one", async () => {
    const { token } = await signedIn()
    const change = (currentPassword: string) =>
      call("POST", "/api/v1/users/me/password", token, { currentPassword, newPassword: "a brand new secret" })
    for (let i = 0; i < 5; i++) expect((await change(`guess number ${i}`)).status).toBe(401)
    const blocked = await change("the current secret")
    expect(blocked.status).toBe(429)
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0)
    expect((await problem(blocked)).code).toBe("too_many_requests")
  })

  it("an account without a password cannot change it here (401 invalid_credentials)", async () => {
    const { token } = await signedIn({ password: null })
    const res = await call("POST", "/api/v1/users/me/password", token, {
      currentPassword: "anything at all",
      newPassword: "a brand new secret",
    })
    expect(res.status).toBe(401)
    expect((await problem(res)).code).toBe("invalid_credentials")
  })

  it("DELETE /users/me deactivates the account (204, identity.user.updated); its tokens then get 403", async () => {
    const { user, token } = await signedIn()
    expect((await call("DELETE", "/api/v1/users/me", token)).status).toBe(204)
    const [row] = await sql(`SELECT status FROM ${identity.db.schema}.users WHERE id = $1`, [user.id])
    expect(row?.status).toBe("disabled")
    const updated = (await eventsOf(user.id)).filter((e) => e.type === "identity.user.updated")
    expect(updated.map((e) => e.data)).toEqual([
      expect.objectContaining({ userId: user.id, changes: { status: "disabled" }, actor: user.id }),
    ])
    for (const [method, path, body] of [
      ["GET", "/api/v1/users/me", undefined],
      ["PATCH", "/api/v1/users/me", { name: "Back" }],
      ["DELETE", "/api/v1/users/me", undefined],
      ["POST", "/api/v1/users/me/password", { currentPassword: "the current secret", newPassword: "new secret!" }],
      ["POST", "/api/v1/auth/resend-verification", undefined],
    ] as const) {
      const res = await call(method, path, token, body)
      expect(res.status, `${method} ${path}`).toBe(403)
      expect((await problem(res)).code).toBe("forbidden")
    }
  })

  it("resend-verification mails a new link (the old one stops working); once verified, 202 and no mail", async () => {
    const { email, token } = await signedIn()
    const [first] = await mailsTo(email)
    const firstToken = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(first?.text ?? "")?.[1]
    expect(firstToken).toBeTruthy()

    expect((await call("POST", "/api/v1/auth/resend-verification", token)).status).toBe(202)
    const mails = await mailsTo(email)
    expect(mails).toHaveLength(2)
    const secondToken = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mails[1]?.text ?? "")?.[1]
    expect(secondToken).toBeTruthy()
    expect(secondToken).not.toBe(firstToken)
    expect((await call("POST", "/api/v1/auth/verify-email", undefined, { token: firstToken })).status).toBe(400)
    expect((await call("POST", "/api/v1/auth/verify-email", undefined, { token: secondToken })).status).toBe(204)

    expect((await call("POST", "/api/v1/auth/resend-verification", token)).status).toBe(202)
    expect(await mailsTo(email)).toHaveLength(2)
    expect(((await (await call("GET", "/api/v1/users/me", token)).json()) as User).emailVerified).toBe(true)
    expect((await call("POST", "/api/v1/auth/resend-verification", undefined)).status).toBe(401)
  })
})
