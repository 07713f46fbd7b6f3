// The whole platform (`npm start`) with SERVICE_REGISTRY=etcd against the real etcd: every function registers
// itself, and requests through the gateway reach them over the registry only (HTTP upstreams from etcd, and every
// gRPC call, such as the permission checks at the edge and in audit, through the etcd resolver).
import { Etcd3 } from "etcd3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NpmStart, startNpmStart } from "../../e2e/testing/npmStart.ts"
import { servicesKey } from "../../shared/EtcdRegistry.ts"
import { etcdEndpoints as endpoints, testPrefix } from "../../shared/testing/etcdRegistry.ts"
import { manifests } from "../registry.ts"
import { freshEmail, signUp } from "./console/testing/accounts.ts"

const prefix = testPrefix()
const admin = freshEmail("registry-admin")

describe.skipIf(endpoints.length === 0)("npm start over the etcd registry (real etcd)", () => {
  let platform: NpmStart

  beforeAll(async () => {
    platform = await startNpmStart({
      SERVICE_REGISTRY: "etcd",
      ETCD_ENDPOINTS: endpoints.join(","),
      SERVICE_REGISTRY_PREFIX: prefix,
      SERVICE_ADVERTISE_HOST: "127.0.0.1",
      BOOTSTRAP_ADMIN_EMAIL: admin,
    })
  }, 120_000)

  afterAll(async () => {
    await platform?.stop()
    const etcd = new Etcd3({ hosts: endpoints })
    try {
      // Stopped gracefully: every instance revoked its lease.
      expect(await etcd.getAll().prefix(prefix).keys()).toEqual([])
      await etcd.delete().prefix(prefix).exec()
    } finally {
      etcd.close()
    }
  }, 60_000)

  it("registers every function but the edge, each under its name", async () => {
    const etcd = new Etcd3({ hosts: endpoints })
    try {
      const names = (await etcd.getAll().prefix(`${prefix}services/`).keys())
        .map((key) => key.slice(`${prefix}services/`.length).split("/")[0])
        .sort()
      expect(names).toEqual(
        manifests
          .filter((m) => !m.edge)
          .map((m) => m.name)
          .sort(),
      )
      expect(servicesKey(prefix, "authz")).toBe(`${prefix}services/authz/`)
    } finally {
      etcd.close()
    }
  })

  it("serves sign-up, signed-in and permission-checked routes through the registry", async () => {
    // auth asks identity over gRPC; the gateway finds auth and identity in etcd.
    const user = await signUp(platform.url, freshEmail("registry"))
    const as = (token: string, path: string) =>
      fetch(`${platform.url}${path}`, { headers: { authorization: `Bearer ${token}` } })
    expect((await as(user.token, "/api/v1/users/me/permissions")).status).toBe(200)
    // The edge's permission check is a gRPC call to authz: a refusal, not 503, says it was answered.
    const refused = await as(user.token, "/api/v1/audit/events")
    expect(refused.status).toBe(403)
    // The admin passes the edge's check and audit's own (audit asks authz over gRPC too).
    // (Its admin role is granted when authz sees the verification's event: shortly after.)
    const boss = await signUp(platform.url, admin)
    const answered = await platform.waitFor("the admin's audit read", async () => {
      const status = (await as(boss.token, "/api/v1/audit/events?limit=1")).status
      return status === 403 ? undefined : status
    })
    expect(answered).toBe(200)
  }, 60_000)
})
