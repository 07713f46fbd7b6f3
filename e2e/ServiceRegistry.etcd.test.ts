// The etcd service registry against the real etcd (infra/up.sh etcd: ETCD_ENDPOINTS) with real processes of a
// function (authz, two instances then a third): they register once ready, callers see them and spread calls over
// them (the gateway's upstream pool over HTTP, a gRPC client through the etcd resolver), `kill -9` takes one out
// within its TTL, a graceful stop at once, a paused one when its lease runs out (and it comes back after).
import { randomBytes, randomUUID } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { Etcd3 } from "etcd3"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Upstreams } from "../functions/gateway/Upstreams.ts"
import { manifests } from "../functions/registry.ts"
import { AuthzServiceClient } from "../proto/gen/authz/v1/authz.ts"
import { etcdTarget, servicesKey } from "../shared/EtcdRegistry.ts"
import * as GrpcClient from "../shared/GrpcClient.ts"
import { ServiceIdentity } from "../shared/ServiceIdentity.ts"
import { ServiceRegistry } from "../shared/ServiceRegistry.ts"
import {
  deletePrefix,
  etcdEndpoints as endpoints,
  type Registered as Instance,
  servedCount,
  startRegistered,
  testPrefix,
  within as waitFor,
} from "../shared/testing/etcdRegistry.ts"
import { type Running, sql, start } from "../shared/testing/harness.ts"

const TTL = 3
const prefix = testPrefix()
const settings = { kind: "etcd", endpoints, prefix, ttlSeconds: TTL, advertiseHost: "127.0.0.1" } as const

// One authz process registering itself in this run's prefix, in its own schema.
const schema = `sr_${randomBytes(4).toString("hex")}`
const launch = () =>
  startRegistered("authz", { prefix, ttlSeconds: TTL, env: { REDIS_URL: undefined, DB_SCHEMA: schema } })

// What an instance's /metrics says it served: HTTP requests to /healthz, gRPC calls of HasPermission.
const healthzServed = (instance: Instance) =>
  servedCount(instance.url, /^http_server_requests_total\{.*route="\/healthz"/)
const grpcServed = (instance: Instance) =>
  servedCount(instance.url, /^grpc_server_requests_total\{.*method="HasPermission"/)

// The caller's side: the gateway's registry and upstream pools, and a gRPC client of authz through etcd.
const callerLayer = Upstreams.layer({
  connections: 4,
  retries: 2,
  breakerFailures: 100,
  breakerCooldownMs: 1_000,
}).pipe(Layer.provideMerge(ServiceRegistry.layerEtcd(settings, ["authz"])))

const identity = ServiceIdentity.layerDev(
  "gateway",
  [],
  manifests.map((m) => m.name),
)

let caller: Running<ServiceRegistry | Upstreams>
let grpcCaller: Running<never>
let hasPermission: (userId: string) => Promise<boolean>
const instances: Array<Instance> = []
const live = () =>
  Context.get(caller.context, ServiceRegistry)
    .origins("authz")
    .map((url) => url.port)
const request = (path: string) =>
  Context.get(caller.context, Upstreams).forward({
    upstream: "authz",
    method: "GET",
    path,
    headers: {},
    body: undefined,
    maxBodyBytes: 1024,
    timeoutMs: 2_000,
  })
const forward = (path: string) =>
  Effect.runPromise(
    request(path).pipe(
      Effect.tap((response) => Effect.sync(() => response.body.resume())),
      Effect.map((response) => response.status),
    ),
  )
const port = (instance: Instance) => new URL(instance.url).port

describe.skipIf(endpoints.length === 0)("the etcd service registry (real etcd, real authz processes)", () => {
  beforeAll(async () => {
    instances.push(...(await Promise.all([launch(), launch()])))
    caller = await start(callerLayer)
    let call: ((userId: string) => Promise<boolean>) | undefined
    grpcCaller = await start(
      Layer.effectDiscard(
        Effect.gen(function* () {
          const client = yield* GrpcClient.make(AuthzServiceClient, {
            address: etcdTarget(endpoints, prefix, "authz"),
            retries: 2,
          })
          const context = yield* Effect.context<never>()
          call = (userId) =>
            Effect.runPromise(
              client.call("hasPermission", { userId, permission: "audit.event.read" }, { idempotent: true }).pipe(
                Effect.map((answer) => answer.allowed),
                Effect.provideContext(context),
              ),
            )
        }),
      ).pipe(Layer.provide(identity)),
    )
    hasPermission = (userId) => call!(userId)
  }, 60_000)

  afterAll(async () => {
    await grpcCaller?.close()
    await caller?.close()
    await Promise.all(instances.map((instance) => instance.child.stop(5_000)))
    await deletePrefix(prefix)
    await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  }, 30_000)

  it("registers each instance once ready, under its lease, as <prefix>services/<name>/<id>", async () => {
    await waitFor("both instances listed", () => live().length === 2, 5_000)
    expect(live().sort()).toEqual(instances.map(port).sort())
    const etcd = new Etcd3({ hosts: endpoints })
    try {
      const records = await etcd.getAll().prefix(servicesKey(prefix, "authz")).json()
      expect(Object.values(records)).toEqual(
        expect.arrayContaining(
          instances.map((i) => ({
            http: i.url,
            grpc: `127.0.0.1:${i.grpcPort}`,
            startedAt: expect.any(String),
          })),
        ),
      )
      const leases = await etcd.getAll().prefix(servicesKey(prefix, "authz")).exec()
      for (const kv of leases.kvs) expect(kv.lease).not.toBe("0")
    } finally {
      etcd.close()
    }
  })

  it("spreads calls over both instances: HTTP through the gateway's upstream pool, gRPC through the resolver", async () => {
    const [a, b] = instances as [Instance, Instance]
    const httpBefore = await Promise.all([healthzServed(a), healthzServed(b)])
    const grpcBefore = await Promise.all([grpcServed(a), grpcServed(b)])
    for (let i = 0; i < 40; i++) expect(await forward("/healthz")).toBe(200)
    for (let i = 0; i < 40; i++) expect(await hasPermission(randomUUID())).toBe(false)
    const httpAfter = await Promise.all([healthzServed(a), healthzServed(b)])
    const grpcAfter = await Promise.all([grpcServed(a), grpcServed(b)])
    const httpShares = httpAfter.map((n, i) => n - httpBefore[i]!)
    const grpcShares = grpcAfter.map((n, i) => n - grpcBefore[i]!)
    console.log(`HTTP calls per instance: ${httpShares.join(" / ")}; gRPC calls: ${grpcShares.join(" / ")}`)
    expect(httpShares.reduce((x, y) => x + y)).toBe(40)
    expect(Math.min(...httpShares)).toBeGreaterThanOrEqual(5)
    expect(grpcShares.reduce((x, y) => x + y)).toBe(40)
    expect(Math.min(...grpcShares)).toBeGreaterThanOrEqual(5)
  })

  it("an instance killed with kill -9 leaves the live set within its TTL; calls keep succeeding on the other", async () => {
    const [a, b] = instances as [Instance, Instance]
    b.child.process.kill("SIGKILL")
    await b.child.exited
    const killed = performance.now()
    // Calls while the dead instance is still listed: its connection is refused, and idempotent calls are retried.
    const during: Array<Promise<unknown>> = []
    const ticker = setInterval(() => {
      during.push(forward("/healthz"), hasPermission(randomUUID()))
    }, 100)
    try {
      await waitFor("the killed instance to leave", () => !live().includes(port(b)), (TTL + 2) * 1_000)
    } finally {
      clearInterval(ticker)
    }
    const gone = Math.round(performance.now() - killed)
    console.log(`kill -9: gone from the live set after ${gone} ms (TTL ${TTL} s)`)
    expect(gone).toBeLessThanOrEqual((TTL + 1) * 1_000)
    expect(live()).toEqual([port(a)])
    const outcomes = await Promise.allSettled(during)
    expect(outcomes.filter((o) => o.status === "rejected")).toEqual([])
    for (let i = 0; i < 10; i++) expect(await forward("/healthz")).toBe(200)
    for (let i = 0; i < 10; i++) expect(await hasPermission(randomUUID())).toBe(false)
  })

  it("a graceful stop deregisters at once (the lease is revoked before the servers stop)", async () => {
    const c = await launch()
    instances.push(c)
    await waitFor("the new instance listed", () => live().includes(port(c)), 5_000)
    const stopping = performance.now()
    const stopped = c.child.stop(10_000)
    const gone = await waitFor("the stopped instance to leave", () => !live().includes(port(c)), 5_000)
    console.log(`SIGTERM: gone from the live set after ${gone} ms`)
    expect((await stopped).code).toBe(0)
    expect(performance.now() - stopping).toBeLessThan(TTL * 1_000)
    expect(gone).toBeLessThan(1_000)
  })

  it("an instance that stops keeping its lease alive (paused) leaves within its TTL, and registers again when it resumes", async () => {
    const [a] = instances as [Instance]
    a.child.process.kill("SIGSTOP")
    const paused = performance.now()
    try {
      await waitFor("the paused instance to leave", () => !live().includes(port(a)), (TTL + 2) * 1_000)
      const gone = Math.round(performance.now() - paused)
      console.log(`paused: gone from the live set after ${gone} ms (TTL ${TTL} s)`)
      expect(gone).toBeLessThanOrEqual((TTL + 1) * 1_000)
      // No instance left: the gateway's pool refuses at once (503 upstream unavailable), never waits.
      const refused = await Effect.runPromise(Effect.flip(request("/healthz")))
      expect(refused).toMatchObject({ _tag: "UpstreamUnavailable", upstream: "authz" })
      expect(refused._tag === "UpstreamUnavailable" && refused.retryAfter).toBeGreaterThan(0)
    } finally {
      a.child.process.kill("SIGCONT")
    }
    await waitFor("the resumed instance to register again", () => live().includes(port(a)), 10_000)
    expect(await forward("/healthz")).toBe(200)
  })
})
