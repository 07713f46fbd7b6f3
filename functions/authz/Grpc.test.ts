import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AuthzServiceClient, type AuthzServiceService } from "../../proto/gen/authz/v1/authz.ts"
import * as GrpcClient from "../../shared/GrpcClient.ts"
import { ServiceIdentity } from "../../shared/ServiceIdentity.ts"
import { sql } from "../../shared/testing/harness.ts"
import { ADMIN_ROLE_ID } from "./Role.ts"
import { type AuthzUnderTest, startAuthz } from "./testing/authzHarness.ts"

// authz.v1.AuthzService on a real gRPC port over real Postgres and Redis, called through the kernel's client.
let authz: AuthzUnderTest
beforeAll(async () => {
  authz = await startAuthz()
})
afterAll(async () => {
  await authz?.close()
  if (authz) await sql(`DROP SCHEMA IF EXISTS ${authz.db.schema} CASCADE`)
})

const grpc = <A, E>(f: (client: GrpcClient.GrpcClient<typeof AuthzServiceService>) => Effect.Effect<A, E>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(GrpcClient.make(AuthzServiceClient, { address: authz.grpcAddress, retries: 0 }), f),
    ).pipe(Effect.provide(ServiceIdentity.layerDev("gateway"))),
  )

const http = (method: string, path: string, body?: unknown) =>
  fetch(`${authz.url}${path}`, {
    headers: { ...authz.admin, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })

const userWith = async (permissions: Array<string>) => {
  const res = await http("POST", "/api/v1/roles", { name: `r-${randomUUID().slice(0, 8)}`, permissions })
  const role = (await res.json()) as { id: string; name: string }
  const user = randomUUID()
  expect((await http("PUT", `/api/v1/users/${user}/roles/${role.id}`)).status).toBe(204)
  return { user, role }
}

describe("authz gRPC", () => {
  it("Authorize and HasPermission follow the grants; `blog.*` covers blog.post.create, not blogx.a", async () => {
    const { user } = await userWith(["blog.*", "identity.user.read"])
    const answers = await grpc((c) =>
      Effect.all([
        c.call("authorize", { userId: user, permission: "blog.post.create" }),
        c.call("authorize", { userId: user, permission: "blogx.a" }),
        c.call("hasPermission", { userId: user, permission: "identity.user.read" }),
        c.call("hasPermission", { userId: user, permission: "identity.user.delete" }),
        c.call("hasPermission", { userId: randomUUID(), permission: "blog.post.create" }),
      ]),
    )
    expect(answers).toEqual([
      { allowed: true, grant: "blog.*" },
      { allowed: false, grant: "" },
      { allowed: true },
      { allowed: false },
      { allowed: false },
    ])
  })

  it("`*` (the built-in admin) grants everything, even permissions no function defines yet", async () => {
    const user = randomUUID()
    await http("PUT", `/api/v1/users/${user}/roles/${ADMIN_ROLE_ID}`)
    const answers = await grpc((c) =>
      Effect.all(
        ["authz.role.delete", "billing.invoice.void", "x"].map((permission) =>
          c.call("authorize", { userId: user, permission }),
        ),
      ),
    )
    expect(answers).toEqual([
      { allowed: true, grant: "*" },
      { allowed: true, grant: "*" },
      { allowed: true, grant: "*" },
    ])
  })

  it("CheckPermissions answers a batch in order; GetUserPermissions and GetUserRoles list the grants and roles", async () => {
    const { user, role } = await userWith(["blog.post.*", "audit.event.read"])
    const [batch, permissions, roles] = await grpc((c) =>
      Effect.all([
        c.call("checkPermissions", {
          userId: user,
          permissions: ["blog.post.create", "blog.comment.moderate", "audit.event.read", "audit.event.verify"],
        }),
        c.call("getUserPermissions", { userId: user }),
        c.call("getUserRoles", { userId: user }),
      ]),
    )
    expect(batch.results).toEqual([
      { permission: "blog.post.create", allowed: true },
      { permission: "blog.comment.moderate", allowed: false },
      { permission: "audit.event.read", allowed: true },
      { permission: "audit.event.verify", allowed: false },
    ])
    expect(permissions.permissions).toEqual(["audit.event.read", "blog.post.*"])
    expect(roles.roles).toEqual([
      expect.objectContaining({ id: role.id, name: role.name, permissions: ["audit.event.read", "blog.post.*"] }),
    ])
  })

  it("malformed user ids and permissions are INVALID_ARGUMENT (ValidationFailed), never internal", async () => {
    const errors = await grpc((c) =>
      Effect.all(
        (
          [
            c.call("authorize", { userId: "nope", permission: "blog.post.create" }),
            c.call("hasPermission", { userId: randomUUID(), permission: "blog.*" }),
            c.call("checkPermissions", { userId: randomUUID(), permissions: ["ok.one", "Bad"] }),
            c.call("checkPermissions", {
              userId: randomUUID(),
              permissions: Array.from({ length: 101 }, () => "a.b"),
            }),
            c.call("getUserPermissions", { userId: "" }),
            c.call("getUserRoles", { userId: "123" }),
          ] as Array<Effect.Effect<unknown, { readonly _tag: string }>>
        ).map((call) => Effect.flip(call)),
      ),
    )
    expect(errors.map((e) => e._tag)).toEqual(Array(6).fill("ValidationFailed"))
  })
})
