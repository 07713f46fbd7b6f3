import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { ADMIN_ROLE_ID } from "./Role.ts"
import { type AuthzUnderTest, startAuthz, startIssuer, type TokenIssuer } from "./testing/authzHarness.ts"

// Authz's HTTP API on a real server over real Postgres and Redis, bearer tokens issued by auth's real code.
let authz: AuthzUnderTest
let issuer: TokenIssuer
beforeAll(async () => {
  issuer = await startIssuer()
  authz = await startAuthz({ issuer })
})
afterAll(async () => {
  await authz?.close()
  await issuer?.close()
  if (authz) await sql(`DROP SCHEMA IF EXISTS ${authz.db.schema} CASCADE`)
})

// authz enforces its own routes: the permission routes are called as the harness's administrator (refusals are in
// ZeroTrust.test.ts); the signed-in caller's routes and explicit headers go as given.
const call = (
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = path.startsWith("/api/v1/users/me/") ? {} : authz.admin,
) =>
  fetch(`${authz.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  })

const problem = async (res: Response) => {
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  return (await body(res)) as { status: number; code: string; errors?: Array<{ path: string; message: string }> }
}

// Response bodies as the tests read them (shapes asserted by the expectations).
const body = async (res: Response | Promise<Response>): Promise<any> => (await res).json()

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`

const createRole = async (permissions: Array<string>, name = unique("role")) => {
  const res = await call("POST", "/api/v1/roles", { name, description: "test", permissions })
  expect(res.status).toBe(201)
  return (await body(res)) as { id: string; name: string; permissions: Array<string> }
}

const eventsOf = (key: string) =>
  sql(
    `SELECT event->>'type' AS type, event->'data' AS data FROM ${authz.db.schema}.outbox WHERE key = $1 ORDER BY seq`,
    [key],
  ) as Promise<Array<{ type: string; data: Record<string, unknown> }>>

describe("roles", () => {
  it("POST creates a role (201), GET reads it, grants sorted and deduplicated; an event is published", async () => {
    const name = unique("editors")
    const res = await call("POST", "/api/v1/roles", {
      name,
      description: "Blog editors",
      permissions: ["blog.post.create", "blog.*", "blog.post.create", "identity.user.read"],
    })
    expect(res.status).toBe(201)
    const role = await body(res)
    expect(role).toMatchObject({
      name,
      description: "Blog editors",
      permissions: ["blog.*", "blog.post.create", "identity.user.read"],
      builtin: false,
    })
    expect(Date.parse(role.createdAt)).toBeGreaterThan(0)
    const fetched = await call("GET", `/api/v1/roles/${role.id}`)
    expect(fetched.status).toBe(200)
    expect(await body(fetched)).toEqual(role)
    expect(await eventsOf(role.id)).toEqual([
      {
        type: "authz.role.created",
        data: expect.objectContaining({ roleId: role.id, name, target: role.id, actor: authz.adminId }),
      },
    ])
  })

  it("invalid permission strings are 400 validation_failed listing each one", async () => {
    const res = await call("POST", "/api/v1/roles", {
      name: unique("bad"),
      permissions: ["Blog.post", "blog..post", "blog.*.create", "*.post", "ok.perm", ""],
    })
    expect(res.status).toBe(400)
    const body = await problem(res)
    expect(body.code).toBe("validation_failed")
    expect(body.errors?.map((e) => e.path)).toEqual([
      "permissions.0",
      "permissions.1",
      "permissions.2",
      "permissions.3",
      "permissions.5",
    ])
  })

  it("permissions no function defines are 400, wildcards included", async () => {
    const res = await call("POST", "/api/v1/roles", {
      name: unique("unknown"),
      permissions: ["blog.post.create", "blog.post.teleport", "nothing.*", "identity.user.read"],
    })
    expect(res.status).toBe(400)
    const body = await problem(res)
    expect(body.errors).toEqual([
      { path: "permissions.1", message: "unknown permission blog.post.teleport" },
      { path: "permissions.2", message: "unknown permission nothing.*" },
    ])
  })

  it("a duplicate name is 409 conflict", async () => {
    const role = await createRole(["blog.*"])
    const res = await call("POST", "/api/v1/roles", { name: role.name, permissions: [] })
    expect(res.status).toBe(409)
    expect((await problem(res)).code).toBe("conflict")
    const other = await createRole([])
    const renamed = await call("PATCH", `/api/v1/roles/${other.id}`, { name: role.name })
    expect(renamed.status).toBe(409)
  })

  it("PATCH changes name, description and grants (unknown grants 400), with an event naming the change", async () => {
    const role = await createRole(["blog.post.create"])
    const name = unique("renamed")
    const res = await call("PATCH", `/api/v1/roles/${role.id}`, { name, permissions: ["blog.*", "audit.*"] })
    expect(res.status).toBe(200)
    expect(await body(res)).toMatchObject({ id: role.id, name, permissions: ["audit.*", "blog.*"] })
    const bad = await call("PATCH", `/api/v1/roles/${role.id}`, { permissions: ["blog.page.*"] })
    expect(bad.status).toBe(400)
    const events = await eventsOf(role.id)
    expect(events.map((e) => e.type)).toEqual(["authz.role.created", "authz.role.updated"])
    expect(events[1]?.data).toMatchObject({
      changes: { name, permissions: ["audit.*", "blog.*"] },
      previousPermissions: ["blog.post.create"],
    })
    expect((await call("PATCH", `/api/v1/roles/${randomUUID()}`, { name: unique("x") })).status).toBe(404)
  })

  it("DELETE removes a role and its assignments (204), then it is 404", async () => {
    const role = await createRole(["blog.*"])
    const user = randomUUID()
    expect((await call("PUT", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
    expect((await call("DELETE", `/api/v1/roles/${role.id}`)).status).toBe(204)
    expect((await call("GET", `/api/v1/roles/${role.id}`)).status).toBe(404)
    expect((await call("DELETE", `/api/v1/roles/${role.id}`)).status).toBe(404)
    expect((await body(call("GET", `/api/v1/users/${user}/roles`))).items).toEqual([])
    const deleted = (await eventsOf(role.id)).at(-1)
    expect(deleted).toMatchObject({ type: "authz.role.deleted", data: { roleId: role.id, unassignedUsers: 1 } })
  })

  it("the built-in admin role (*) cannot be deleted, renamed or regranted; its description may change", async () => {
    const admin = await body(call("GET", `/api/v1/roles/${ADMIN_ROLE_ID}`))
    expect(admin).toMatchObject({ name: "admin", permissions: ["*"], builtin: true })
    expect((await call("DELETE", `/api/v1/roles/${ADMIN_ROLE_ID}`)).status).toBe(409)
    expect((await call("PATCH", `/api/v1/roles/${ADMIN_ROLE_ID}`, { permissions: ["blog.*"] })).status).toBe(409)
    expect((await call("PATCH", `/api/v1/roles/${ADMIN_ROLE_ID}`, { name: "root" })).status).toBe(409)
    // Restating what it already is changes nothing and is fine.
    const same = await call("PATCH", `/api/v1/roles/${ADMIN_ROLE_ID}`, { name: "admin", permissions: ["*"] })
    expect(same.status).toBe(200)
    const described = await call("PATCH", `/api/v1/roles/${ADMIN_ROLE_ID}`, { description: "Everything" })
    expect(await body(described)).toMatchObject({ name: "admin", permissions: ["*"], description: "Everything" })
  })

  it("lists page with ?limit=&cursor= and return {items, nextCursor}", async () => {
    for (let i = 0; i < 3; i++) await createRole([])
    const seen: Array<string> = []
    let cursor: string | null = null
    do {
      const res = await call("GET", `/api/v1/roles?limit=2${cursor ? `&cursor=${cursor}` : ""}`)
      expect(res.status).toBe(200)
      const page = (await body(res)) as { items: Array<{ id: string }>; nextCursor: string | null }
      expect(page.items.length).toBeLessThanOrEqual(2)
      seen.push(...page.items.map((r) => r.id))
      cursor = page.nextCursor
    } while (cursor)
    expect(new Set(seen).size).toBe(seen.length)
    const all = await sql(`SELECT id FROM ${authz.db.schema}.roles`)
    expect(seen.sort()).toEqual(all.map((r) => r.id).sort())
    expect(seen).toContain(ADMIN_ROLE_ID)
  })
})

describe("permissions registry", () => {
  it("GET /permissions lists every manifest's permissions with their module, paged by name", async () => {
    const res = await call("GET", "/api/v1/permissions?limit=100")
    const page = (await body(res)) as { items: Array<{ name: string; module: string }>; nextCursor: null }
    expect(page.items).toContainEqual({ name: "authz.role.create", description: "Create roles", module: "authz" })
    expect(page.items.map((p) => p.name)).toContain("identity.user.read")
    const first = await body(call("GET", "/api/v1/permissions?limit=2"))
    const second = await body(call("GET", `/api/v1/permissions?limit=2&cursor=${first.nextCursor}`))
    expect([...first.items, ...second.items].map((p: { name: string }) => p.name)).toEqual(
      page.items.slice(0, 4).map((p) => p.name),
    )
  })
})

describe("assignments", () => {
  it("PUT is idempotent (204, one event), GET lists the user's roles, DELETE takes it back", async () => {
    const role = await createRole(["blog.post.create"])
    const user = randomUUID()
    expect((await call("PUT", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
    expect((await call("PUT", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
    expect((await call("PUT", `/api/v1/users/${user}/roles/${ADMIN_ROLE_ID}`)).status).toBe(204)
    const listed = await body(call("GET", `/api/v1/users/${user}/roles?limit=1`))
    expect(listed.items.map((r: { id: string }) => r.id)).toEqual([role.id])
    const next = await body(call("GET", `/api/v1/users/${user}/roles?cursor=${listed.nextCursor}`))
    expect(next).toMatchObject({ items: [{ id: ADMIN_ROLE_ID }], nextCursor: null })
    expect((await call("DELETE", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
    expect((await call("DELETE", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
    expect((await call("PUT", `/api/v1/users/${user}/roles/${randomUUID()}`)).status).toBe(404)
    const events = await eventsOf(user)
    expect(events.map((e) => e.type)).toEqual([
      "authz.assignment.created",
      "authz.assignment.created",
      "authz.assignment.deleted",
    ])
    expect(events[0]?.data).toMatchObject({ userId: user, roleId: role.id, roleName: role.name, target: user })
  })

  it("GET /users/me/permissions answers the signed-in caller's grants; no token is 401", async () => {
    const role = await createRole(["blog.*", "identity.user.read"])
    const user = randomUUID()
    const token = await issuer.issue(user)
    const me = () => call("GET", "/api/v1/users/me/permissions", undefined, { authorization: `Bearer ${token}` })
    expect(await body(me())).toEqual({ items: [] })
    await call("PUT", `/api/v1/users/${user}/roles/${role.id}`)
    expect(await body(me())).toEqual({ items: ["blog.*", "identity.user.read"] })
    const anonymous = await call("GET", "/api/v1/users/me/permissions")
    expect(anonymous.status).toBe(401)
    expect((await problem(anonymous)).code).toBe("unauthorized")
    const forged = await call("GET", "/api/v1/users/me/permissions", undefined, { authorization: "Bearer x.y.z" })
    expect(forged.status).toBe(401)
  })
})

describe("bad input is a 4xx problem on every route, never a 5xx", () => {
  const role = randomUUID()
  const user = randomUUID()
  const cases: Array<[string, string, unknown?]> = [
    ["GET", "/api/v1/permissions?limit=0"],
    ["GET", "/api/v1/permissions?limit=abc"],
    ["GET", "/api/v1/permissions?cursor=!!!"],
    ["GET", "/api/v1/permissions?cursor=eyJ4IjoxfQ"],
    ["GET", "/api/v1/roles?limit=101"],
    ["GET", "/api/v1/roles?cursor=not-a-cursor"],
    ["GET", "/api/v1/roles?cursor=eyJhdCI6Im5vdC1hLWRhdGUiLCJpZCI6Im5vdC1hLXV1aWQifQ"],
    ["GET", "/api/v1/roles/not-a-uuid"],
    ["POST", "/api/v1/roles", "{not json"],
    ["POST", "/api/v1/roles", { name: "x" }],
    ["POST", "/api/v1/roles", { name: "x", permissions: "blog.*" }],
    ["POST", "/api/v1/roles", { name: "x", permissions: [], extra: 1 }],
    ["POST", "/api/v1/roles", { name: "x".repeat(65), permissions: [] }],
    ["POST", "/api/v1/roles", { name: "x", permissions: Array.from({ length: 201 }, () => "blog.*") }],
    ["POST", "/api/v1/roles", { name: "x", permissions: [42] }],
    ["POST", "/api/v1/roles", [1, 2]],
    ["PATCH", "/api/v1/roles/not-a-uuid", { name: "x" }],
    ["PATCH", `/api/v1/roles/${role}`, { permissions: ["a..b"] }],
    ["PATCH", `/api/v1/roles/${role}`, { description: 5 }],
    ["PATCH", `/api/v1/roles/${role}`, { unknown: true }],
    ["DELETE", "/api/v1/roles/not-a-uuid"],
    ["GET", "/api/v1/users/not-a-uuid/roles"],
    ["GET", `/api/v1/users/${user}/roles?limit=-1`],
    ["GET", `/api/v1/users/${user}/roles?cursor=eyJhdCI6IngiLCJpZCI6InkifQ`],
    ["PUT", `/api/v1/users/not-a-uuid/roles/${role}`],
    ["PUT", `/api/v1/users/${user}/roles/not-a-uuid`],
    ["DELETE", `/api/v1/users/${user}/roles/not-a-uuid`],
    ["DELETE", `/api/v1/users/not-a-uuid/roles/${role}`],
    ["GET", "/api/v1/users/me/permissions"],
    ["POST", "/api/v1/permissions", {}],
  ]
  for (const [method, path, body] of cases) {
    it(`${method} ${path} ${body === undefined ? "" : JSON.stringify(body).slice(0, 40)}`, async () => {
      const res = await call(method, path, body)
      expect(res.status, await res.clone().text()).toBeGreaterThanOrEqual(400)
      expect(res.status).toBeLessThan(500)
      expect(res.headers.get("content-type")).toBe("application/problem+json")
    })
  }
})
