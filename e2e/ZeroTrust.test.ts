import { generateKeyPairSync, randomUUID } from "node:crypto"
import * as grpc from "@grpc/grpc-js"
import { SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { manifests } from "../functions/registry.ts"
import { AuditServiceClient } from "../proto/gen/audit/v1/audit.ts"
import { AuthServiceClient } from "../proto/gen/auth/v1/auth.ts"
import { AuthzServiceClient } from "../proto/gen/authz/v1/authz.ts"
import { IdentityServiceClient } from "../proto/gen/identity/v1/identity.ts"
import { callersOf } from "../shared/ServiceIdentity.ts"
import { serviceToken } from "../shared/testing/serviceToken.ts"
import { mailText as mailTextOf, type Platform, startPlatform } from "./testing/platform.ts"
import { platformClient } from "./testing/platformFlow.ts"

// Zero trust: every function enforces its own routes and internal calls, whoever reaches its ports. The whole platform
// runs as separate processes (as deployed); every request here goes straight to a function's own port, never through
// the gateway, as anything inside the cluster or the VPC could.
const adminEmail = `zt-admin-${randomUUID().slice(0, 8)}@example.com`
let platform: Platform
let client: ReturnType<typeof platformClient>
let admin: { userId: string; access_token: string }
let user: { userId: string; access_token: string; refresh_token: string }

const mailText = (email: string) => mailTextOf(platform, email)

beforeAll(async () => {
  platform = await startPlatform({ env: { BOOTSTRAP_ADMIN_EMAIL: adminEmail } })
  client = platformClient({ url: platform.url, adminEmail, mailText })
  admin = await client.signUp(adminEmail)
  await client.within("the bootstrap admin role", async () => {
    const me = await client.api("GET", "/api/v1/users/me/permissions", { token: admin.access_token })
    return me.body?.items?.includes("*") === true
  })
  user = await client.signUp(`zt-user-${randomUUID().slice(0, 8)}@example.com`)
}, 180_000)
afterAll(() => platform?.stop(), 60_000)

// A direct request to a function's own HTTP port.
const direct = async (fn: string, method: string, path: string, token?: string) => {
  const res = await fetch(`${platform.functions.get(fn)!.url}${path}`, {
    method,
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      ...(method === "GET" || method === "DELETE" ? {} : { "content-type": "application/json" }),
    },
    ...(method === "GET" || method === "DELETE" ? {} : { body: "{}" }),
  })
  const body = await res.text()
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    challenge: res.headers.get("www-authenticate"),
    body,
  }
}

// A concrete path for a template: every parameter a well-formed id (or a provider name).
const concrete = (template: string) =>
  template.replace(/\{(\w+)\}/g, (_, name: string) => (name === "provider" ? "nobody" : randomUUID()))

const routes = manifests.flatMap((m) => m.routes.map((r) => ({ fn: m.name, ...r })))

describe("zero trust: every function's HTTP port enforces its own routes", () => {
  it.each(routes.filter((r) => r.auth !== "public").map((r) => [`${r.fn}: ${r.method} ${r.path}`, r] as const))(
    "%s: no token is 401 with a Bearer challenge; a forged one is 401",
    async (_, route) => {
      const anonymous = await direct(route.fn, route.method, concrete(route.path))
      expect(anonymous.status, anonymous.body).toBe(401)
      expect(anonymous.type).toBe("application/problem+json")
      expect(anonymous.challenge).toBe("Bearer")
      const forged = await direct(route.fn, route.method, concrete(route.path), `${user.access_token.slice(0, -4)}AAAA`)
      expect(forged.status, forged.body).toBe(401)
    },
  )

  it.each(routes.filter((r) => typeof r.auth === "object").map((r) => [`${r.fn}: ${r.method} ${r.path}`, r] as const))(
    "%s: a signed-in user without the permission is 403",
    async (_, route) => {
      const res = await direct(route.fn, route.method, concrete(route.path), user.access_token)
      expect(res.status, res.body).toBe(403)
      expect(JSON.parse(res.body)).toMatchObject({ code: "forbidden" })
    },
  )

  it.each(
    routes
      .filter((r) => typeof r.auth === "object" && r.method === "GET")
      .map((r) => [`${r.fn}: ${r.method} ${r.path}`, r] as const),
  )("%s: the administrator is let through", async (_, route) => {
    const res = await direct(route.fn, route.method, concrete(route.path), admin.access_token)
    expect([401, 403], res.body).not.toContain(res.status)
    expect(res.status, res.body).toBeLessThan(500)
  })

  it.each(routes.filter((r) => r.auth === "public").map((r) => [`${r.fn}: ${r.method} ${r.path}`, r] as const))(
    "%s: public, answered without a token",
    async (_, route) => {
      const res = await direct(route.fn, route.method, concrete(route.path))
      expect([401, 403], res.body).not.toContain(res.status)
      expect(res.status, res.body).toBeLessThan(500)
    },
  )

  it("a grant and its revocation hold at the service itself within 1 s; a logout too", async () => {
    const path = `/api/v1/users/${user.userId}`
    expect((await direct("identity", "GET", path, user.access_token)).status).toBe(403)
    const role = await client.api("POST", "/api/v1/roles", {
      token: admin.access_token,
      body: { name: `zt-${randomUUID().slice(0, 8)}`, permissions: ["identity.user.read"] },
    })
    expect(role.status).toBe(201)
    const assignment = `/api/v1/users/${user.userId}/roles/${role.body.id}`
    expect((await client.api("PUT", assignment, { token: admin.access_token })).status).toBe(204)
    await client.within(
      "the grant at identity",
      async () => (await direct("identity", "GET", path, user.access_token)).status === 200,
      1_000,
    )
    expect((await client.api("DELETE", assignment, { token: admin.access_token })).status).toBe(204)
    await client.within(
      "the revocation at identity",
      async () => (await direct("identity", "GET", path, user.access_token)).status === 403,
      1_000,
    )

    expect((await direct("identity", "GET", "/api/v1/users/me", user.access_token)).status).toBe(200)
    const out = await client.api("POST", "/api/v1/auth/logout", { body: { refresh_token: user.refresh_token } })
    expect(out.status).toBe(204)
    await client.within(
      "the logout at identity",
      async () => (await direct("identity", "GET", "/api/v1/users/me", user.access_token)).status === 401,
      1_000,
    )
  })
})

// One unary method of each function's gRPC service, called with a raw grpc-js client and chosen metadata.
const probes: Record<string, (address: string, metadata: grpc.Metadata) => Promise<grpc.ServiceError | null>> = {
  identity: (address, md) => call(new IdentityServiceClient(address, insecure), "getUser", { id: randomUUID() }, md),
  authz: (address, md) =>
    call(new AuthzServiceClient(address, insecure), "authorize", { userId: randomUUID(), permission: "x.y.z" }, md),
  audit: (address, md) =>
    call(new AuditServiceClient(address, insecure), "record", { id: randomUUID(), action: "x.y.z" }, md),
  auth: (address, md) => call(new AuthServiceClient(address, insecure), "validateToken", { token: "x" }, md),
}
const insecure = grpc.credentials.createInsecure()
const call = (client: grpc.Client, method: string, request: object, metadata: grpc.Metadata) =>
  new Promise<grpc.ServiceError | null>((resolve) => {
    ;(client as unknown as Record<string, Function>)[method]!.call(
      client,
      request,
      metadata,
      { deadline: Date.now() + 5_000 },
      (error: grpc.ServiceError | null) => {
        client.close()
        resolve(error)
      },
    )
  })
const bearer = (token: string) => {
  const md = new grpc.Metadata()
  md.set("authorization", `Bearer ${token}`)
  return md
}

const served = manifests.filter((m) => m.ports.grpc !== undefined && probes[m.name] !== undefined)

describe("zero trust: every function's gRPC port verifies its caller", () => {
  it("covers every function with a gRPC port", () => {
    expect(manifests.filter((m) => m.ports.grpc !== undefined).map((m) => m.name)).toEqual(served.map((m) => m.name))
  })

  it.each(served.map((m) => [m.name, m] as const))(
    "%s: UNAUTHENTICATED without or with a bad service token",
    async (name) => {
      const address = `127.0.0.1:${platform.functions.get(name)!.grpcPort}`
      const probe = probes[name]!
      const caller = callersOf(name, manifests)[0]!
      expect((await probe(address, new grpc.Metadata()))?.code).toBe(grpc.status.UNAUTHENTICATED)
      // A user's access token is no service token.
      expect((await probe(address, bearer(user.access_token)))?.code).toBe(grpc.status.UNAUTHENTICATED)
      // Signed by a key that is not the caller's.
      const { privateKey } = generateKeyPairSync("ed25519")
      const now = Math.floor(Date.now() / 1000)
      const forged = await new SignJWT({})
        .setProtectedHeader({ alg: "EdDSA", typ: "svc+jwt" })
        .setIssuer(caller)
        .setSubject(caller)
        .setAudience(name)
        .setIssuedAt(now)
        .setExpirationTime(now + 60)
        .setJti(randomUUID())
        .sign(privateKey)
      expect((await probe(address, bearer(forged)))?.code).toBe(grpc.status.UNAUTHENTICATED)
      // The caller's genuine token, but for another function.
      const elsewhere = manifests.find((m) => m.name !== name)!.name
      expect((await probe(address, bearer(await serviceToken(caller, elsewhere))))?.code).toBe(
        grpc.status.UNAUTHENTICATED,
      )
    },
  )

  it.each(served.map((m) => [m.name, m] as const))(
    "%s: serves the functions that depend on it, PERMISSION_DENIED to the others",
    async (name) => {
      const address = `127.0.0.1:${platform.functions.get(name)!.grpcPort}`
      const probe = probes[name]!
      const callers = callersOf(name, manifests)
      expect(callers.length).toBeGreaterThan(0)
      for (const caller of callers) {
        const error = await probe(address, bearer(await serviceToken(caller, name)))
        expect([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED]).not.toContain(error?.code)
      }
      for (const other of manifests.map((m) => m.name).filter((n) => n !== name && !callers.includes(n))) {
        const error = await probe(address, bearer(await serviceToken(other, name)))
        expect(error?.code, `${other} calling ${name}`).toBe(grpc.status.PERMISSION_DENIED)
      }
    },
  )
})
