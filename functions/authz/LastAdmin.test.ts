import { randomUUID } from "node:crypto"
import { Effect, Exit, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AuthzServiceClient } from "../../proto/gen/authz/v1/authz.ts"
import * as GrpcClient from "../../shared/GrpcClient.ts"
import { ServiceIdentity } from "../../shared/ServiceIdentity.ts"
import { sql } from "../../shared/testing/harness.ts"
import { manifest as identity } from "../identity/module.ts"
import { Administrators } from "./Administrators.ts"
import { ADMIN_ROLE_ID, type RoleId, type UserId } from "./Role.ts"
import { Roles } from "./Roles.ts"
import { type AuthzUnderTest, startAuthz, startIssuer, type TokenIssuer } from "./testing/authzHarness.ts"

// The last administrator (an active user holding `*`) cannot be taken away through authz: not by taking the role,
// deleting it or taking `*` out of it. Real authz over real Postgres; the caller is an operator holding `authz.*`
// (not `*`, so it never counts as an administrator itself).
let authz: AuthzUnderTest
let issuer: TokenIssuer
let operator: Record<string, string>
beforeAll(async () => {
  issuer = await startIssuer()
  authz = await startAuthz({ issuer })
  const operators = await inAuthz(
    Effect.flatMap(Effect.service(Roles), (roles) =>
      roles.create({ name: `operators-${randomUUID().slice(0, 6)}`, permissions: ["authz.*"] }),
    ),
  )
  const operatorId = randomUUID()
  await inAuthz(Effect.flatMap(Effect.service(Roles), (roles) => roles.assign(operatorId as UserId, operators.id)))
  operator = { authorization: `Bearer ${await issuer.issue(operatorId)}` }
})
afterAll(async () => {
  await authz?.close()
  await issuer?.close()
  if (authz) await sql(`DROP SCHEMA IF EXISTS ${authz.db.schema} CASCADE`)
})

const inAuthz = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.runPromise(effect.pipe(Effect.provideContext(authz.running.context as never)) as Effect.Effect<A, E>)

const call = (method: string, path: string, body?: unknown) =>
  fetch(`${authz.url}${path}`, {
    method,
    headers: { ...operator, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })

const expectLastAdmin = async (res: Response) => {
  expect(res.status).toBe(409)
  expect(res.headers.get("content-type")).toBe("application/problem+json")
  expect(await res.json()).toMatchObject({
    status: 409,
    code: "last_admin",
    type: "urn:problem:last_admin",
    detail: expect.stringContaining("no active administrator"),
  })
}

// Who holds `*` now, through which role.
const holders = () =>
  sql(
    `SELECT ur.user_id, ur.role_id FROM ${authz.db.schema}.user_roles ur
     JOIN ${authz.db.schema}.roles r ON r.id = ur.role_id WHERE '*' = ANY (r.permissions)`,
  ) as Promise<Array<{ user_id: string; role_id: string }>>

/** Makes `users` (new ids) the administrators: they get the admin role, then every earlier holder loses `*`. */
const onlyAdmins = async (count: number, roleId: RoleId = ADMIN_ROLE_ID) => {
  const users = Array.from({ length: count }, () => randomUUID() as UserId)
  await inAuthz(
    Effect.flatMap(Effect.service(Roles), (roles) => Effect.forEach(users, (user) => roles.assign(user, roleId))),
  )
  for (const held of await holders()) {
    if (users.includes(held.user_id as UserId)) continue
    await inAuthz(
      Effect.flatMap(Effect.service(Roles), (roles) => roles.unassign(held.user_id as UserId, held.role_id as RoleId)),
    )
  }
  expect((await holders()).map((h) => h.user_id).sort()).toEqual([...users].sort())
  return users
}

// authz's SetUserActive as `caller` would send it.
const setUserActive = (caller: string, request: { userId: string; active: boolean; version: number }) =>
  Effect.runPromise(
    Effect.exit(
      Effect.scoped(
        Effect.flatMap(GrpcClient.make(AuthzServiceClient, { address: authz.grpcAddress, retries: 0 }), (client) =>
          client.call("setUserActive", request),
        ),
      ).pipe(Effect.provide(ServiceIdentity.layerDev(caller, [], ["authz"]))),
    ),
  )

// "ok", or the tag of the typed error the call failed with.
const outcome = (exit: Exit.Exit<unknown, { readonly _tag: string }>) =>
  Exit.isSuccess(exit)
    ? "ok"
    : Option.match(Exit.findErrorOption(exit), { onNone: () => "defect", onSome: (error) => error._tag })

describe("the last administrator", () => {
  it("cannot lose the admin role (409 last_admin); with a second administrator it can (204)", async () => {
    const [only] = await onlyAdmins(1)
    await expectLastAdmin(await call("DELETE", `/api/v1/users/${only}/roles/${ADMIN_ROLE_ID}`))
    expect((await holders()).map((h) => h.user_id)).toEqual([only])

    const [first, second] = await onlyAdmins(2)
    expect((await call("DELETE", `/api/v1/users/${first}/roles/${ADMIN_ROLE_ID}`)).status).toBe(204)
    await expectLastAdmin(await call("DELETE", `/api/v1/users/${second}/roles/${ADMIN_ROLE_ID}`))
  })

  it("a role granting `*` that the last administrator holds cannot be deleted or lose `*`", async () => {
    const role = await inAuthz(
      Effect.flatMap(Effect.service(Roles), (roles) =>
        roles.create({ name: `root-${randomUUID().slice(0, 6)}`, permissions: ["*"] }),
      ),
    )
    const [only] = await onlyAdmins(1, role.id)
    await expectLastAdmin(await call("PATCH", `/api/v1/roles/${role.id}`, { permissions: ["authz.*"] }))
    await expectLastAdmin(await call("DELETE", `/api/v1/roles/${role.id}`))
    // Changes that keep `*` go through.
    const renamed = await call("PATCH", `/api/v1/roles/${role.id}`, { description: "still everything" })
    expect(renamed.status).toBe(200)
    expect((await call("GET", `/api/v1/roles/${role.id}`)).status).toBe(200)

    // Once someone else administers, the role may go.
    await onlyAdmins(1)
    await inAuthz(Effect.flatMap(Effect.service(Roles), (roles) => roles.assign(only!, role.id)))
    expect((await call("PATCH", `/api/v1/roles/${role.id}`, { permissions: ["authz.*"] })).status).toBe(200)
    expect((await call("DELETE", `/api/v1/roles/${role.id}`)).status).toBe(204)
  })

  it("of two administrators taking each other's role at once, exactly one succeeds", async () => {
    for (let round = 0; round < 5; round++) {
      const [a, b] = await onlyAdmins(2)
      const answers = await Promise.all([
        call("DELETE", `/api/v1/users/${a}/roles/${ADMIN_ROLE_ID}`),
        call("DELETE", `/api/v1/users/${b}/roles/${ADMIN_ROLE_ID}`),
      ])
      expect(answers.map((r) => r.status).sort()).toEqual([204, 409])
      expect(await holders()).toHaveLength(1)
    }
  })

  it("a holder that identity reports inactive is no administrator; the report is identity's alone", async () => {
    const [a, b] = await onlyAdmins(2)
    // Only identity may report; another function of the platform is refused.
    expect(outcome(await setUserActive("gateway", { userId: b!, active: false, version: 1 }))).toBe("Forbidden")

    expect(outcome(await setUserActive(identity.name, { userId: b!, active: false, version: 1 }))).toBe("ok")
    await expectLastAdmin(await call("DELETE", `/api/v1/users/${a}/roles/${ADMIN_ROLE_ID}`))
    // The last active administrator cannot be reported inactive either (identity then keeps it active).
    expect(outcome(await setUserActive(identity.name, { userId: a!, active: false, version: 1 }))).toBe("LastAdmin")

    expect(outcome(await setUserActive(identity.name, { userId: b!, active: true, version: 0 }))).toBe(
      "ValidationFailed",
    )

    // Reports are ordered by identity's version: an older reactivation changes nothing; at an equal version the
    // reactivation (done in identity) wins over the deactivation (only about to be done).
    expect(outcome(await setUserActive(identity.name, { userId: b!, active: false, version: 3 }))).toBe("ok")
    expect(outcome(await setUserActive(identity.name, { userId: b!, active: true, version: 2 }))).toBe("ok")
    await expectLastAdmin(await call("DELETE", `/api/v1/users/${a}/roles/${ADMIN_ROLE_ID}`))
    expect(outcome(await setUserActive(identity.name, { userId: b!, active: true, version: 3 }))).toBe("ok")
    expect((await call("DELETE", `/api/v1/users/${a}/roles/${ADMIN_ROLE_ID}`)).status).toBe(204)
  })

  it("a platform without administrators (before the bootstrap) is not blocked", async () => {
    const [only] = await onlyAdmins(1)
    await sql(`DELETE FROM ${authz.db.schema}.user_roles WHERE user_id = $1`, [only])
    await inAuthz(Effect.flatMap(Effect.service(Administrators), (admins) => admins.guard(Effect.void)))
    const role = await call("POST", "/api/v1/roles", { name: `r-${randomUUID().slice(0, 6)}`, permissions: ["*"] })
    expect(role.status).toBe(201)
    const { id } = (await role.json()) as { id: string }
    expect((await call("DELETE", `/api/v1/roles/${id}`)).status).toBe(204)
  })
})
