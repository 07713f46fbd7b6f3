import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { type IdentityUnderTest, startIdentity } from "./testing/identityHarness.ts"
import { Users } from "./Users.ts"

// Identity's HTTP app on a real server (port 0) over a fresh schema of the real Postgres.
let identity: IdentityUnderTest
let app: IdentityUnderTest["app"]
let url: string
let db: IdentityUnderTest["db"]
beforeAll(async () => {
  identity = await startIdentity()
  ;({ app, url, db } = identity)
})
afterAll(() => identity?.close())

// Identity enforces its own routes: the admin routes are called as the harness's administrator (refusals are in
// ZeroTrust.test.ts); a request that brings its own Authorization keeps it.
const fetch = (input: string, init: RequestInit = {}) =>
  globalThis.fetch(input, { ...init, headers: { ...identity.admin, ...(init.headers as Record<string, string>) } })

const createUser = (email: string) =>
  Effect.runPromise(
    Effect.flatMap(Effect.service(Users), (users) => users.create({ email, name: "Ada" })).pipe(
      Effect.provideContext(app.context),
    ),
  )

const problem = async (res: Response) => {
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  return (await res.json()) as { status: number; code: string; errors?: Array<{ path: string; message: string }> }
}

describe("identity HTTP", () => {
  it("GET /api/v1/users/{id} returns the user", async () => {
    const user = await createUser(`ada-${Date.now()}@example.com`)
    const res = await fetch(`${url}/api/v1/users/${user.id}`)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ id: user.id, name: "Ada", emailVerified: false, status: "active" })
    expect(res.headers.get("x-request-id")).toMatch(/.+/)
  })

  it("keeps a sane X-Request-Id and replaces an unsafe one", async () => {
    const kept = await fetch(`${url}/healthz`, { headers: { "x-request-id": "req-123.abc" } })
    expect(kept.headers.get("x-request-id")).toBe("req-123.abc")
    const replaced = await fetch(`${url}/healthz`, { headers: { "x-request-id": "<script>" } })
    expect(replaced.headers.get("x-request-id")).not.toBe("<script>")
  })

  it("an unknown id format is a 400 validation_failed naming the parameter", async () => {
    const res = await fetch(`${url}/api/v1/users/not-a-uuid`)
    expect(res.status).toBe(400)
    const body = await problem(res)
    expect(body.code).toBe("validation_failed")
    expect(body.errors).toEqual([{ path: "params.id", message: "must be a UUID" }])
  })

  it("a missing user is a 404 not_found problem", async () => {
    const res = await fetch(`${url}/api/v1/users/0195a0a0-0000-7000-8000-000000000000`)
    expect(res.status).toBe(404)
    expect((await problem(res)).code).toBe("not_found")
  })

  it("PATCH updates the name and status", async () => {
    const user = await createUser(`grace-${Date.now()}@example.com`)
    const res = await fetch(`${url}/api/v1/users/${user.id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Grace", status: "disabled" }),
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ id: user.id, name: "Grace", status: "disabled" })
  })

  it("an empty PATCH changes nothing and publishes no event; a deleted user is 404", async () => {
    const user = await createUser(`noop-${Date.now()}@example.com`)
    const res = await fetch(`${url}/api/v1/users/${user.id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: "{}",
    })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ id: user.id, updatedAt: user.updatedAt })
    const events = await sql(`SELECT event->>'type' AS type FROM ${db.schema}.outbox WHERE key = $1`, [user.id])
    expect(events.map((e) => e.type)).toEqual(["identity.user.created"])
    await sql(`UPDATE ${db.schema}.users SET status = 'deleted' WHERE id = $1`, [user.id])
    expect((await fetch(`${url}/api/v1/users/${user.id}`)).status).toBe(404)
  })

  it("lists users newest first in pages that neither skip nor repeat, filtered by email", async () => {
    const tag = `page-${Date.now()}`
    const created: Array<string> = []
    for (let i = 0; i < 5; i++) created.push((await createUser(`${tag}-${i}@example.com`)).id)
    // Rows within one millisecond (the cursor's precision) must still page correctly.
    for (const [i, micros] of [
      [1, "456"],
      [2, "300"],
      [3, "100"],
    ] as const) {
      await sql(`UPDATE ${db.schema}.users SET created_at = $2 WHERE id = $1`, [
        created[i],
        `2026-01-01T00:00:00.123${micros}Z`,
      ])
    }
    const seen: Array<string> = []
    let cursor: string | null = null
    let pages = 0
    do {
      const query: string = cursor ? `limit=2&cursor=${encodeURIComponent(cursor)}` : "limit=2"
      const res = await fetch(`${url}/api/v1/users?${query}`)
      expect(res.status).toBe(200)
      const body = (await res.json()) as { items: Array<{ id: string }>; nextCursor: string | null }
      expect(body.items.length).toBeLessThanOrEqual(2)
      seen.push(...body.items.map((u) => u.id))
      cursor = body.nextCursor
      pages++
    } while (cursor !== null && pages < 50)
    expect(new Set(seen).size).toBe(seen.length)
    for (const id of created) expect(seen).toContain(id)

    const filtered = await fetch(`${url}/api/v1/users?email=${encodeURIComponent(`${tag}-3@EXAMPLE.com`)}`)
    expect(((await filtered.json()) as { items: Array<{ id: string }> }).items.map((u) => u.id)).toEqual([created[3]])
  })

  it("bad list parameters are 400s naming them", async () => {
    for (const [query, path] of [
      ["limit=0", "query.limit"],
      ["limit=101", "query.limit"],
      ["limit=abc", "query.limit"],
      ["cursor=not-a-cursor", "query.cursor"],
      // Well-formed, but not a position this list hands out: must not reach SQL as a bad timestamp (was a 503).
      [`cursor=${Buffer.from(JSON.stringify({ at: "x", id: "y" })).toString("base64url")}`, "query.cursor"],
    ] as const) {
      const res = await fetch(`${url}/api/v1/users?${query}`)
      expect(res.status, query).toBe(400)
      const body = await problem(res)
      expect(body.errors?.map((e) => e.path)).toContain(path)
    }
  })

  it("DELETE marks the user deleted (204), publishes identity.user.deleted; again is 404", async () => {
    const user = await createUser(`del-${Date.now()}@example.com`)
    expect((await fetch(`${url}/api/v1/users/${user.id}`, { method: "DELETE" })).status).toBe(204)
    expect((await fetch(`${url}/api/v1/users/${user.id}`)).status).toBe(404)
    expect((await fetch(`${url}/api/v1/users/${user.id}`, { method: "DELETE" })).status).toBe(404)
    const events = await sql(`SELECT event->>'type' AS type FROM ${db.schema}.outbox WHERE key = $1 ORDER BY seq`, [
      user.id,
    ])
    expect(events.map((e) => e.type)).toEqual(["identity.user.created", "identity.user.deleted"])
  })

  // The token of the newest mail to `to`, read from the mail outbox (no sender runs in this test).
  const tokenMailedTo = async (to: string, path: string) => {
    const [mail] = await sql(`SELECT text FROM ${db.schema}.mail_outbox WHERE "to" = $1 ORDER BY created_at DESC`, [to])
    const match = new RegExp(`${path}\\?token=([A-Za-z0-9_-]+)`).exec(mail?.text ?? "")
    expect(match, `a ${path} link in the mail to ${to}`).toBeTruthy()
    return match![1]!
  }
  const post = (path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    })

  it("a new account is mailed a verification link; the token verifies once, then is invalid", async () => {
    const email = `verify-${Date.now()}@example.com`
    const user = await createUser(email)
    const token = await tokenMailedTo(email, "/verify-email")
    expect(
      await sql(`SELECT count(*)::int AS n FROM ${db.schema}.email_tokens WHERE token_hash = $1`, [token]),
    ).toEqual([{ n: 0 }]) // only the hash is stored
    expect((await post("/api/v1/auth/verify-email", { token })).status).toBe(204)
    expect(await (await fetch(`${url}/api/v1/users/${user.id}`)).json()).toMatchObject({ emailVerified: true })
    const again = await post("/api/v1/auth/verify-email", { token })
    expect(again.status).toBe(400)
    expect((await problem(again)).code).toBe("invalid_token")
    const events = await sql(`SELECT event->>'type' AS type FROM ${db.schema}.outbox WHERE key = $1 ORDER BY seq`, [
      user.id,
    ])
    expect(events.map((e) => e.type)).toEqual(["identity.user.created", "identity.email.verified"])
  })

  it("an expired verification token is refused", async () => {
    const email = `expired-${Date.now()}@example.com`
    await createUser(email)
    const token = await tokenMailedTo(email, "/verify-email")
    await sql(`UPDATE ${db.schema}.email_tokens SET expires_at = now() - interval '1 second'`)
    const res = await post("/api/v1/auth/verify-email", { token })
    expect(res.status).toBe(400)
    expect((await problem(res)).code).toBe("invalid_token")
  })

  it("password reset: 202 whether or not the account exists; the mailed token sets a new password once", async () => {
    const email = `reset-${Date.now()}@example.com`
    const user = await createUser(email)
    const before = await sql(`SELECT count(*)::int AS n FROM ${db.schema}.mail_outbox`)
    expect((await post("/api/v1/auth/password-reset", { email: `nobody-${email}` })).status).toBe(202)
    expect(await sql(`SELECT count(*)::int AS n FROM ${db.schema}.mail_outbox`)).toEqual(before)

    expect((await post("/api/v1/auth/password-reset", { email: email.toUpperCase() })).status).toBe(202)
    const token = await tokenMailedTo(email, "/reset-password")
    const short = await post("/api/v1/auth/password-reset/confirm", { token, newPassword: "short" })
    expect(short.status).toBe(400)
    expect((await problem(short)).errors?.map((e) => e.path)).toEqual(["newPassword"])
    expect(
      (await post("/api/v1/auth/password-reset/confirm", { token, newPassword: "a brand new secret" })).status,
    ).toBe(204)
    const reused = await post("/api/v1/auth/password-reset/confirm", { token, newPassword: "another new secret" })
    expect((await problem(reused)).code).toBe("invalid_token")

    const check = (password: string) =>
      Effect.runPromise(
        Effect.flatMap(Effect.service(Users), (users) => users.verifyCredentials(email, password)).pipe(
          Effect.provideContext(app.context),
        ),
      )
    expect((await check("a brand new secret"))._tag).toBe("Some")
    expect((await check("another new secret"))._tag).toBe("None")
    const events = await sql(`SELECT event->>'type' AS type FROM ${db.schema}.outbox WHERE key = $1 ORDER BY seq`, [
      user.id,
    ])
    expect(events.map((e) => e.type)).toContain("identity.password.reset")
  })

  it("malformed JSON is a 400 validation_failed, never a 5xx", async () => {
    const user = await createUser(`mal-${Date.now()}@example.com`)
    const res = await fetch(`${url}/api/v1/users/${user.id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: '{"name": "x",',
    })
    expect(res.status).toBe(400)
    expect((await problem(res)).code).toBe("validation_failed")
  })

  it("wrong types are a 400 listing every bad field", async () => {
    const user = await createUser(`types-${Date.now()}@example.com`)
    const res = await fetch(`${url}/api/v1/users/${user.id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: 42, status: "deleted", role: "admin" }),
    })
    expect(res.status).toBe(400)
    const body = await problem(res)
    expect(body.code).toBe("validation_failed")
    expect(body.errors?.map((e) => e.path).sort()).toEqual(["name", "role", "status"])
  })

  it("a non-JSON content type is a 415 problem", async () => {
    const res = await fetch(`${url}/api/v1/users/0195a0a0-0000-7000-8000-000000000000`, {
      method: "PATCH",
      headers: { "content-type": "text/plain" },
      body: "name=x",
    })
    expect(res.status).toBe(415)
    expect((await problem(res)).code).toBe("unsupported_media_type")
  })

  it("a NUL character anywhere (body, query, path) is a 400 validation_failed naming where, never a 503", async () => {
    const user = await createUser(`nul-${Date.now()}@example.com`)
    const json = { "content-type": "application/json" }
    const cases: Array<[string, RequestInit, string]> = [
      ["/api/v1/auth/password-reset", { method: "POST", headers: json, body: '{"email":"a\\u0000@x.com"}' }, "body"],
      [`/api/v1/users/${user.id}`, { method: "PATCH", headers: json, body: '{"name":"Ad\\u0000min"}' }, "body"],
      ["/api/v1/users?email=a%00b", {}, "query"],
      ["/api/v1/users/a%00b", {}, "path"],
    ]
    for (const [path, init, where] of cases) {
      const res = await fetch(`${url}${path}`, init)
      expect(res.status, path).toBe(400)
      expect(await problem(res)).toMatchObject({
        code: "validation_failed",
        errors: [{ path: where, message: "must not contain NUL characters (U+0000)" }],
      })
    }
    // An escaped backslash before "u0000" is ordinary text.
    const res = await fetch(`${url}/api/v1/users/${user.id}`, {
      method: "PATCH",
      headers: json,
      body: '{"name":"C:\\\\u0000"}',
    })
    expect(res.status).toBe(200)
  })

  it("1,000 unknown query parameters get a short 400: the first 20 problems and how many there were", async () => {
    const query = Array.from({ length: 1_000 }, (_, i) => `p${i}=x`).join("&")
    const res = await fetch(`${url}/api/v1/users?${query}`)
    expect(res.status).toBe(400)
    const text = await res.text()
    expect(text.length).toBeLessThan(4_096)
    const body = JSON.parse(text) as { code: string; detail: string; errors: Array<unknown> }
    expect(body.code).toBe("validation_failed")
    expect(body.errors).toHaveLength(20)
    expect(body.detail).toMatch(/first 20 of 1000 problems/)
  })

  it("a body over the limit is a 413 problem", async () => {
    const res = await fetch(`${url}/api/v1/users/0195a0a0-0000-7000-8000-000000000000`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "x".repeat(70 * 1024) }),
    })
    expect(res.status).toBe(413)
    expect((await problem(res)).code).toBe("payload_too_large")
  })

  it("a chunked body over the limit (no Content-Length) is a 413 problem too", async () => {
    const chunk = new TextEncoder().encode(`{"name":"${"x".repeat(16 * 1024)}`)
    let sent = 0
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 10) controller.enqueue(chunk)
        else controller.close()
      },
    })
    const res = await fetch(`${url}/api/v1/users/0195a0a0-0000-7000-8000-000000000000`, {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit)
    expect(res.status).toBe(413)
    expect((await problem(res)).code).toBe("payload_too_large")
  })

  it("unknown path is 404; known path with a wrong method is 405 with Allow", async () => {
    const missing = await fetch(`${url}/api/v1/nothing`)
    expect(missing.status).toBe(404)
    expect((await problem(missing)).code).toBe("not_found")
    const wrong = await fetch(`${url}/api/v1/users/0195a0a0-0000-7000-8000-000000000000`, { method: "POST" })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get("allow")).toBe("GET, PATCH, DELETE")
    expect((await problem(wrong)).code).toBe("method_not_allowed")
  })

  it("serves /healthz, /readyz with the postgres check, and /metrics per route", async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200)
    const ready = await fetch(`${url}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toMatchObject({ checks: { postgres: "ok" } })
    const metrics = await (await fetch(`${url}/metrics`)).text()
    expect(metrics).toMatch(/http_server_requests_total\{method="GET",route="\/api\/v1\/users\/:id",status="404"\} \d+/)
    expect(metrics).toMatch(/http_server_request_duration_seconds_bucket/)
    expect(metrics).toMatch(/db_pool_connections\{[^}]*state="total"[^}]*\} \d+/)
    expect(metrics).toMatch(/db_query_duration_seconds_count \d+/)
  })
})
