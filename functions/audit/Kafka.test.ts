import * as net from "node:net"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CloudEvent from "../../shared/CloudEvent.ts"
import { Db } from "../../shared/Db.ts"
import { Kafka } from "../../shared/Kafka.ts"
import { migrate } from "../../shared/Migrator.ts"
import * as Outbox from "../../shared/Outbox.ts"
import { OutboxRelay } from "../../shared/OutboxRelay.ts"
import * as PgEventBus from "../../shared/PgEventBus.ts"
import { freshSchema, type Running, sql, start, eventually as waitFor } from "../../shared/testing/harness.ts"
import { type AuthUnderTest, type IdentityUnderTest, startAuth, startIdentityGrpc } from "../auth/testing/authApp.ts"
import { type AuditUnderTest, freshAuditSchema, startAudit } from "./testing/auditApp.ts"

const eventually = (what: string, check: () => Promise<boolean>) => waitFor(what, check, 60_000)

type Item = { id: string; action: string; actorId: string | null; targetId: string | null; outcome: string }
const list = async (audit: AuditUnderTest, query: string) => {
  const res = await fetch(`${audit.url}/api/v1/audit/events?limit=100&${query}`, { headers: audit.admin })
  return ((await res.json()) as { items: Array<Item> }).items
}

// identity and auth wired as in production (outboxes relayed to the real Kafka); audit consumes every producer's
// topic from Kafka, working as its least-privilege database role.
describe("audit over the real Kafka", () => {
  let identity: IdentityUnderTest
  let auth: AuthUnderTest
  let audit: AuditUnderTest
  beforeAll(async () => {
    identity = await startIdentityGrpc({ kafka: true })
    auth = await startAuth(identity, {}, { kafka: true })
    const schema = freshAuditSchema()
    audit = await startAudit({ schema, kafka: true, env: { AUDIT_DB_ROLE: `${schema}_writer` } })
  }, 120_000)
  afterAll(async () => {
    await audit?.close()
    await auth?.close()
    await identity?.running.close()
  })

  const post = (path: string, body: unknown) =>
    fetch(`${auth.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "audit-e2e-1" },
      body: JSON.stringify(body),
    })

  it("records identity's and auth's events, failures as failures, with the chain intact", async () => {
    // The service's own queries run as the least-privilege role.
    const [who] = await Effect.runPromise(
      Effect.flatMap(Effect.service(Db), (db) => db.query("SELECT current_user AS role")).pipe(
        Effect.provideContext(audit.running.context as never),
      ),
    )
    expect(who).toEqual({ role: `${audit.config.dbSchema}_writer` })
    const email = `audit-${Date.now()}@example.com`
    const registered = await post("/api/v1/auth/register", { email, password: "correct horse battery", name: "Au" })
    expect(registered.status).toBe(201)
    const user = (await registered.json()) as { id: string }
    expect((await post("/api/v1/auth/login", { email, password: "correct horse battery" })).status).toBe(200)
    expect((await post("/api/v1/auth/login", { email, password: "wrong password!!" })).status).toBe(401)

    await eventually("the user's three events in the audit log", async () => {
      const actions = (await list(audit, `targetId=${user.id}`)).map((i) => i.action)
      return ["identity.user.created", "auth.login.succeeded", "auth.login.failed"].every((a) => actions.includes(a))
    })
    const items = await list(audit, `targetId=${user.id}`)
    expect(items.find((i) => i.action === "identity.user.created")).toMatchObject({ outcome: "success" })
    expect(items.find((i) => i.action === "auth.login.succeeded")).toMatchObject({
      actorId: user.id,
      outcome: "success",
      targetType: "user",
    })
    expect(items.find((i) => i.action === "auth.login.failed")).toMatchObject({ outcome: "failure" })
    const verify = await (await fetch(`${audit.url}/api/v1/audit/verify`, { headers: audit.admin })).json()
    expect(verify).toMatchObject({ ok: true })
  }, 120_000)
})

// A TCP port that refuses connections until `open`, then forwards them to the test broker.
const brokerProxy = async () => {
  const [host = "127.0.0.1", brokerPort = "9092"] = (process.env.KAFKA_BROKERS ?? "").split(",")[0]!.split(":")
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(brokerPort), host)
    client.pipe(upstream).pipe(client)
    client.on("error", () => upstream.destroy())
    upstream.on("error", () => client.destroy())
  })
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
  return {
    port,
    open: () => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve)),
    close: () => server.close(),
  }
}

describe("a Kafka outage", () => {
  it("delays audit records but loses none (producer side and consumer side)", async () => {
    const proxy = await brokerProxy()
    const producerDb = freshSchema("t_out")
    const topic = CloudEvent.topicOf(producerDb.schema)
    // The producer's relay reaches Kafka only through the proxy, which refuses connections for now.
    const producer: Running<Db | Outbox.Outbox> = await start(
      OutboxRelay.layer({ batchSize: 50, pollInterval: "20 millis", maxBackoff: "300 millis" }).pipe(
        Layer.provide(
          Kafka.layer({
            brokers: [`127.0.0.1:${proxy.port}`],
            clientId: "audit-outage",
            retry: { retries: 2, initialRetryTime: 50, maxRetryTime: 200 },
          }),
        ),
        Layer.provideMerge(Outbox.Outbox.layer(producerDb.schema)),
        Layer.provideMerge(Layer.effectDiscard(migrate([...Outbox.migrations, ...PgEventBus.migrations]))),
        Layer.provideMerge(Db.layer(producerDb)),
      ),
    )
    const publish = (from: number, count: number) =>
      Effect.runPromise(
        Effect.gen(function* () {
          const db = yield* Db
          const outbox = yield* Outbox.Outbox
          yield* db.transaction(
            Effect.forEach(
              Array.from({ length: count }, (_, i) => from + i),
              (n) => outbox.publish({ type: "test.item.created", subject: `k${n % 3}`, data: { n } }),
            ),
          )
        }).pipe(Effect.provideContext(producer.context)),
      )
    const schema = freshAuditSchema()
    const startIt = () => startAudit({ schema, kafka: true, env: { AUDIT_TOPICS: topic } })
    const recorded = async () =>
      ((await sql(`SELECT count(*)::int AS n FROM ${schema}.audit_events WHERE action = 'test.item.created'`))[0]!
        .n as number) ?? 0
    let audit = await startIt()
    try {
      // Kafka unreachable for the producer: events wait in its outbox, nothing reaches the audit log.
      await publish(0, 20)
      await new Promise((resolve) => setTimeout(resolve, 1500))
      expect(await recorded()).toBe(0)
      await proxy.open()
      await eventually("20 records once Kafka is back", async () => (await recorded()) === 20)

      // Audit itself away (stopped): the events wait in Kafka and are recorded when it is back.
      await audit.close()
      await publish(20, 10)
      await eventually("the relay to publish", async () => {
        const [row] = await sql(`SELECT count(*)::int AS n FROM ${producerDb.schema}.outbox WHERE published_at IS NULL`)
        return row!.n === 0
      })
      expect(await recorded()).toBe(20)
      audit = await startIt()
      await eventually("all 30 records after the restart", async () => (await recorded()) === 30)
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect(await recorded()).toBe(30)
      const ns = await sql(`SELECT (metadata->>'n')::int AS n FROM ${schema}.audit_events ORDER BY 1`)
      expect(ns.map((r) => r.n)).toEqual(Array.from({ length: 30 }, (_, i) => i))
      expect(await (await fetch(`${audit.url}/api/v1/audit/verify`, { headers: audit.admin })).json()).toEqual({
        ok: true,
        checked: 30,
        head: expect.stringMatching(/^[0-9a-f]{64}$/),
        rechecked: 30,
      })
    } finally {
      await audit.close()
      await producer.close()
      proxy.close()
    }
  }, 120_000)
})
