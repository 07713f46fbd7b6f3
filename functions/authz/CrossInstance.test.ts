import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AuthzServiceClient, type AuthzServiceService } from "../../proto/gen/authz/v1/authz.ts"
import * as GrpcClient from "../../shared/GrpcClient.ts"
import { ServiceIdentity } from "../../shared/ServiceIdentity.ts"
import { sql } from "../../shared/testing/harness.ts"
import { type AuthzUnderTest, startAuthz } from "./testing/authzHarness.ts"

// Two authz processes' worth of instances on one schema: a change made through instance A must be enforced by
// instance B (which has the old answer cached) within 1 s, with Redis and with process memory as the cache.

const hasPermission = (instance: AuthzUnderTest, userId: string, permission: string) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(
        GrpcClient.make<typeof AuthzServiceService>(AuthzServiceClient, {
          address: instance.grpcAddress,
          retries: 0,
        }),
        (client) => client.call("hasPermission", { userId, permission }),
      ),
    ).pipe(Effect.provide(ServiceIdentity.layerDev("gateway"))),
  ).then((response) => response.allowed)

const http = async (instance: AuthzUnderTest, method: string, path: string, body?: unknown) => {
  const res = await fetch(`${instance.url}${path}`, {
    method,
    headers: { ...instance.admin, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  expect(res.status, await res.clone().text()).toBeLessThan(300)
  return res.status === 204 ? undefined : ((await res.json()) as { id: string })
}

// Polls B until it answers `expected`; the time it took from the change.
const enforcedWithin = async (check: () => Promise<boolean>, expected: boolean, since: number) => {
  while ((await check()) !== expected) {
    if (Date.now() - since > 5_000) throw new Error(`still ${!expected} after 5 s`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return Date.now() - since
}

const scenario = (mode: "redis" | "memory") => {
  let a: AuthzUnderTest
  let b: AuthzUnderTest
  const env = mode === "memory" ? { REDIS_URL: undefined } : {}

  beforeAll(async () => {
    if (mode === "redis") expect(process.env.REDIS_URL, "REDIS_URL (from .env.test)").toBeTruthy()
    a = await startAuthz({ env })
    b = await startAuthz({ schema: a.db.schema, env })
  })
  afterAll(async () => {
    await b?.close()
    await a?.close()
    if (a) await sql(`DROP SCHEMA IF EXISTS ${a.db.schema} CASCADE`)
  })

  it("a grant, a revocation, a regrant of the role and its deletion through A are enforced by B within 1 s", async () => {
    const role = (await http(a, "POST", "/api/v1/roles", {
      name: `cross-${randomUUID().slice(0, 8)}`,
      permissions: ["blog.post.create"],
    }))!
    const user = randomUUID()
    const check = () => hasPermission(b, user, "blog.post.create")
    // B has decided (and cached) "no" before the grant.
    expect(await check()).toBe(false)
    expect(await check()).toBe(false)
    if (mode === "redis") {
      const redis = new Redis(process.env.REDIS_URL!)
      try {
        expect((await redis.keys(`authz.${a.db.schema}:grants:*:${user}`)).length).toBeGreaterThan(0)
      } finally {
        redis.disconnect()
      }
    }

    let since = Date.now()
    await http(a, "PUT", `/api/v1/users/${user}/roles/${role.id}`)
    expect(await enforcedWithin(check, true, since)).toBeLessThan(1_000)

    since = Date.now()
    await http(a, "DELETE", `/api/v1/users/${user}/roles/${role.id}`)
    expect(await enforcedWithin(check, false, since)).toBeLessThan(1_000)

    await http(a, "PUT", `/api/v1/users/${user}/roles/${role.id}`)
    await enforcedWithin(check, true, Date.now())
    since = Date.now()
    await http(a, "PATCH", `/api/v1/roles/${role.id}`, { permissions: ["blog.comment.moderate"] })
    expect(await enforcedWithin(check, false, since)).toBeLessThan(1_000)

    await http(a, "PATCH", `/api/v1/roles/${role.id}`, { permissions: ["blog.*"] })
    await enforcedWithin(check, true, Date.now())
    since = Date.now()
    await http(a, "DELETE", `/api/v1/roles/${role.id}`)
    expect(await enforcedWithin(check, false, since)).toBeLessThan(1_000)
  })
}

describe("cache invalidation across instances, Redis cache", () => scenario("redis"))
describe("cache invalidation across instances, memory caches (no Redis)", () => scenario("memory"))
