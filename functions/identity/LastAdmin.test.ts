import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { Tokens } from "../auth/Tokens.ts"
import { ADMIN_ROLE_ID, type UserId as AuthzUserId, type RoleId } from "../authz/Role.ts"
import { Roles } from "../authz/Roles.ts"
import { type AuthzUnderTest, startAuthz, startIssuer, type TokenIssuer } from "../authz/testing/authzHarness.ts"
import { type IdentityUnderTest, startIdentity } from "./testing/identityHarness.ts"
import { Users } from "./Users.ts"

// Identity refuses to disable or delete the last administrator (an active user holding `*`, which authz knows): real
// identity asking real authz over gRPC (as identity), both over real Postgres.
let authz: AuthzUnderTest
let issuer: TokenIssuer
let identity: IdentityUnderTest
let operator: Record<string, string>
beforeAll(async () => {
  issuer = await startIssuer()
  authz = await startAuthz({ issuer })
  identity = await startIdentity({ authzGrpcAddress: authz.grpcAddress })
  // authz's caller for the assignment routes: `authz.*` (not `*`, so never an administrator itself).
  const operatorId = randomUUID()
  await inAuthz(
    Effect.gen(function* () {
      const roles = yield* Roles
      const operators = yield* roles.create({ name: `operators-${randomUUID().slice(0, 6)}`, permissions: ["authz.*"] })
      yield* roles.assign(operatorId as AuthzUserId, operators.id)
    }),
  )
  operator = { authorization: `Bearer ${await issuer.issue(operatorId)}` }
})
afterAll(async () => {
  await identity?.close()
  await authz?.close()
  await issuer?.close()
  if (identity) await sql(`DROP SCHEMA IF EXISTS ${identity.db.schema} CASCADE`)
  if (authz) await sql(`DROP SCHEMA IF EXISTS ${authz.db.schema} CASCADE`)
})

const inAuthz = <A, E>(effect: Effect.Effect<A, E, Roles>) =>
  Effect.runPromise(effect.pipe(Effect.provideContext(authz.running.context)))

const createUser = async (prefix: string, target: IdentityUnderTest = identity) => {
  const user = await Effect.runPromise(
    Effect.flatMap(Effect.service(Users), (users) =>
      users.create({ email: `${prefix}-${randomUUID().slice(0, 8)}@example.com`, name: "Someone" }),
    ).pipe(Effect.provideContext(target.app.context)),
  )
  return user.id
}

/** New identity accounts that become the only holders of `*` in authz (every earlier holder loses it). */
const onlyAdmins = async (count: number) => {
  const ids: Array<string> = []
  for (let i = 0; i < count; i++) ids.push(await createUser("admin"))
  await inAuthz(
    Effect.flatMap(Effect.service(Roles), (roles) =>
      Effect.forEach(ids, (id) => roles.assign(id as AuthzUserId, ADMIN_ROLE_ID)),
    ),
  )
  const holders = (await sql(
    `SELECT ur.user_id, ur.role_id FROM ${authz.db.schema}.user_roles ur
     JOIN ${authz.db.schema}.roles r ON r.id = ur.role_id WHERE '*' = ANY (r.permissions)`,
  )) as Array<{ user_id: string; role_id: string }>
  for (const held of holders.filter((h) => !ids.includes(h.user_id))) {
    await inAuthz(
      Effect.flatMap(Effect.service(Roles), (roles) =>
        roles.unassign(held.user_id as AuthzUserId, held.role_id as RoleId),
      ),
    )
  }
  return ids
}

// Identity's admin routes as the harness's administrator; the own-account routes as the account itself.
const asAdmin = (method: string, path: string, body?: unknown) =>
  fetch(`${identity.url}${path}`, {
    method,
    headers: { ...identity.admin, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })

const tokenOf = async (userId: string) => {
  const issued = await Effect.runPromise(
    Effect.flatMap(Effect.service(Tokens), (tokens) =>
      tokens.issueAccessToken({ sub: userId, sid: randomUUID() }),
    ).pipe(Effect.provideContext(identity.auth.context)),
  )
  return { authorization: `Bearer ${issued.token}` }
}

const statusOf = async (id: string) => ((await (await asAdmin("GET", `/api/v1/users/${id}`)).json()) as any).status

const expectLastAdmin = async (res: Response) => {
  expect(res.status).toBe(409)
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  expect(await res.json()).toMatchObject({ status: 409, code: "last_admin", detail: expect.any(String) })
}

describe("the last administrator", () => {
  it("cannot be disabled, deleted, or deactivate itself (409 last_admin) and stays active", async () => {
    const [only] = await onlyAdmins(1)
    await expectLastAdmin(await asAdmin("PATCH", `/api/v1/users/${only}`, { status: "disabled" }))
    await expectLastAdmin(await asAdmin("DELETE", `/api/v1/users/${only}`))
    await expectLastAdmin(
      await fetch(`${identity.url}/api/v1/users/me`, { method: "DELETE", headers: await tokenOf(only!) }),
    )
    expect(await statusOf(only!)).toBe("active")
    // Other changes to the account still go through.
    expect((await asAdmin("PATCH", `/api/v1/users/${only}`, { name: "Still Admin" })).status).toBe(200)
  })

  it("of two administrators one may go; enabled again, it counts again", async () => {
    const [a, b] = await onlyAdmins(2)
    expect((await asAdmin("PATCH", `/api/v1/users/${b}`, { status: "disabled" })).status).toBe(200)
    await expectLastAdmin(await asAdmin("PATCH", `/api/v1/users/${a}`, { status: "disabled" }))
    expect((await asAdmin("PATCH", `/api/v1/users/${b}`, { status: "active" })).status).toBe(200)
    expect((await asAdmin("DELETE", `/api/v1/users/${a}`)).status).toBe(204)
    expect(await statusOf(b!)).toBe("active")
    await expectLastAdmin(
      await fetch(`${identity.url}/api/v1/users/me`, { method: "DELETE", headers: await tokenOf(b!) }),
    )
  })

  it("a plain user is disabled and deleted as before", async () => {
    await onlyAdmins(1)
    const plain = await createUser("plain")
    expect((await asAdmin("PATCH", `/api/v1/users/${plain}`, { status: "disabled" })).status).toBe(200)
    expect((await asAdmin("DELETE", `/api/v1/users/${plain}`)).status).toBe(204)
    expect((await asAdmin("DELETE", `/api/v1/users/${plain}`)).status).toBe(404)
  })

  it("of two administrators disabling each other at once, exactly one succeeds", async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b] = await onlyAdmins(2)
      const answers = await Promise.all([
        asAdmin("PATCH", `/api/v1/users/${a}`, { status: "disabled" }),
        fetch(`${identity.url}/api/v1/users/me`, { method: "DELETE", headers: await tokenOf(b!) }),
      ])
      // One wins (200 for the PATCH, 204 for the DELETE), the other is the last administrator's 409.
      expect(answers.filter((r) => r.status === 200 || r.status === 204)).toHaveLength(1)
      expect(answers.filter((r) => r.status === 409)).toHaveLength(1)
      expect([await statusOf(a!), await statusOf(b!)].sort()).toEqual(["active", "disabled"])
    }
  })

  it("a disabled administrator does not count in authz: the remaining one keeps the admin role", async () => {
    const [a, b] = await onlyAdmins(2)
    expect((await asAdmin("PATCH", `/api/v1/users/${b}`, { status: "disabled" })).status).toBe(200)
    await expectLastAdmin(
      await fetch(`${authz.url}/api/v1/users/${a}/roles/${ADMIN_ROLE_ID}`, { method: "DELETE", headers: operator }),
    )
  })

  it("without authz a status change is refused (503) and nothing changes", async () => {
    const offline = await startIdentity({ authzGrpcAddress: `127.0.0.1:${await freePort()}` })
    try {
      const user = await createUser("offline", offline)
      const res = await fetch(`${offline.url}/api/v1/users/${user}`, {
        method: "PATCH",
        headers: { ...offline.admin, "content-type": "application/json" },
        body: JSON.stringify({ status: "disabled" }),
      })
      expect(res.status).toBe(503)
      expect(await res.json()).toMatchObject({ code: "service_unavailable" })
      const after = await fetch(`${offline.url}/api/v1/users/${user}`, { headers: offline.admin })
      expect(((await after.json()) as any).status).toBe("active")
    } finally {
      await offline.close()
      await sql(`DROP SCHEMA IF EXISTS ${offline.db.schema} CASCADE`)
    }
  })
})
