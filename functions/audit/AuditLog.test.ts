import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CloudEvent from "../../shared/CloudEvent.ts"
import { Db } from "../../shared/Db.ts"
import { migrate } from "../../shared/Migrator.ts"
import * as Outbox from "../../shared/Outbox.ts"
import * as PgEventBus from "../../shared/PgEventBus.ts"
import { waitUntil } from "../../shared/testing/busHarness.ts"
import { freshSchema, type Running, sql, start } from "../../shared/testing/harness.ts"
import { AuditLog } from "./AuditLog.ts"
import { type AuditUnderTest, freshAuditSchema, recordClient, startAudit } from "./testing/auditApp.ts"

// Two audit instances on one schema (as two containers would be), both consuming a producer's outbox through the
// Postgres-backed bus and both serving Record, on the real Postgres.
let producer: Running<Db | Outbox.Outbox>
let schema: string
let one: AuditUnderTest
let two: AuditUnderTest

const run = <A, E, R>(running: Running<R>, effect: Effect.Effect<A, E, R>) =>
  Effect.runPromise(effect.pipe(Effect.provideContext(running.context)))

const publish = (events: ReadonlyArray<Outbox.NewEvent>) =>
  run(
    producer,
    Effect.gen(function* () {
      const db = yield* Db
      const outbox = yield* Outbox.Outbox
      return yield* db.transaction(Effect.forEach(events, (e) => outbox.publish(e)))
    }),
  )

const count = async (where = "true", params: Array<unknown> = []) => {
  const [row] = await sql(`SELECT count(*)::int AS n FROM ${schema}.audit_events WHERE ${where}`, params)
  return row!.n as number
}

const verify = (audit: AuditUnderTest, options?: { readonly full?: boolean }) =>
  run(
    audit.running,
    Effect.flatMap(Effect.service(AuditLog), (log) => log.verify(options)),
  )

beforeAll(async () => {
  const producerDb = freshSchema("t_prod")
  producer = await start(
    Layer.effectDiscard(migrate([...Outbox.migrations, ...PgEventBus.migrations])).pipe(
      Layer.provideMerge(Outbox.Outbox.layer(producerDb.schema)),
      Layer.provideMerge(Db.layer(producerDb)),
    ),
  )
  schema = freshAuditSchema()
  const env = { AUDIT_TOPICS: CloudEvent.topicOf(producerDb.schema) }
  one = await startAudit({ schema, env })
  two = await startAudit({ schema, env })
}, 60_000)
afterAll(async () => {
  await one?.close()
  await two?.close()
  await producer?.close()
})

describe("audit log", () => {
  it("keeps one linear chain under 1,000 concurrent appends (Record calls on two instances + consumed events)", async () => {
    const clients = [recordClient(one.grpcAddress), recordClient(two.grpcAddress)]
    const before = await count()
    const records = Array.from({ length: 500 }, (_, i) =>
      clients[i % 2]!.record({ action: "test.thing.done", targetId: `t${i}`, metadataJson: JSON.stringify({ i }) }),
    )
    const events = Array.from({ length: 50 }, (_, tx) =>
      publish(
        Array.from({ length: 10 }, (_, i) => ({
          type: "test.item.created",
          subject: `k${tx}`,
          data: { n: tx * 10 + i, actor: randomUUID() },
        })),
      ),
    )
    await Promise.all([...records, ...events])
    for (const c of clients) c.close()
    await Effect.runPromise(
      waitUntil(
        "1,000 records",
        Effect.promise(() => count().then((n) => n >= before + 1000)),
        "60 seconds",
      ),
    )
    expect(await count()).toBe(before + 1000)
    const verification = await verify(one)
    expect(verification).toMatchObject({ ok: true, checked: before + 1000 })
    // No fork: every record has its own predecessor, and the head is the hash of the last record in chain order.
    const [links] = await sql(
      `SELECT count(DISTINCT prev_hash)::int AS prevs, count(*)::int AS n FROM ${schema}.audit_events`,
    )
    expect(links!.prevs).toBe(links!.n)
    const [head] = await sql(`SELECT hash FROM ${schema}.audit_events ORDER BY seq DESC LIMIT 1`)
    expect(verification).toMatchObject({ head: head!.hash })
  }, 90_000)

  it("records the same event delivered twice once, and a repeated Record id once", async () => {
    const [event] = await publish([{ type: "auth.login.failed", subject: "u1", data: { email: "x@example.com" } }])
    // The same envelope a second time in the outbox (a relay re-sending after a crash looks like this).
    const producerSchema = (await run(producer, Effect.service(Db))).schema
    await sql(`INSERT INTO ${producerSchema}.outbox (id, topic, key, event) VALUES ($1, $2, $3, $4)`, [
      randomUUID(),
      CloudEvent.topicOf(producerSchema),
      "u1",
      JSON.stringify(event),
    ])
    const [marker] = await publish([{ type: "test.marker.done", subject: "m", data: {} }])
    await Effect.runPromise(
      waitUntil(
        "the marker",
        Effect.promise(() => count("id = $1", [marker!.id]).then((n) => n === 1)),
      ),
    )
    expect(await count("id = $1", [event!.id])).toBe(1)
    const [stored] = await sql(`SELECT outcome, target_id, metadata FROM ${schema}.audit_events WHERE id = $1`, [
      event!.id,
    ])
    expect(stored).toMatchObject({ outcome: "failure", target_id: "u1", metadata: { email: "x@example.com" } })

    const client = recordClient(one.grpcAddress)
    const id = randomUUID()
    const first = await client.record({ id, action: "test.thing.done", metadataJson: '{"a":1}' })
    const again = await client.record({ id, action: "test.thing.done", metadataJson: '{"a":2}' })
    client.close()
    expect(again.record).toEqual(first.record)
    expect(await count("id = $1", [id])).toBe(1)
  })

  it("refuses UPDATE, DELETE and TRUNCATE: the trigger for the owner, missing grants for the service role", async () => {
    const [row] = await sql(`SELECT id FROM ${schema}.audit_events LIMIT 1`)
    const id = row!.id as string
    await expect(sql(`UPDATE ${schema}.audit_events SET action = 'x.y.z' WHERE id = $1`, [id])).rejects.toThrow(
      /append-only: UPDATE refused/,
    )
    await expect(sql(`DELETE FROM ${schema}.audit_events WHERE id = $1`, [id])).rejects.toThrow(
      /append-only: DELETE refused/,
    )
    await expect(sql(`TRUNCATE ${schema}.audit_events`)).rejects.toThrow(/append-only: TRUNCATE refused/)
    const asRole = (statement: string) => sql(`SET ROLE ${schema}_writer; ${statement}`)
    await expect(asRole(`UPDATE ${schema}.audit_events SET action = 'x.y.z' WHERE id = '${id}'`)).rejects.toThrow(
      /permission denied/,
    )
    await expect(asRole(`DELETE FROM ${schema}.audit_events WHERE id = '${id}'`)).rejects.toThrow(/permission denied/)
    await expect(asRole(`TRUNCATE ${schema}.audit_events`)).rejects.toThrow(/permission denied/)
    // What the role may do: read the log.
    await asRole(`SELECT count(*) FROM ${schema}.audit_events`)
    expect((await verify(one)).ok).toBe(true)
  })
})

describe("audit verification", () => {
  it("reports the id of a row altered behind the trigger's back", async () => {
    const tampered = await startAudit({ schema: freshAuditSchema(), env: { AUDIT_TOPICS: "t-none.events" } })
    try {
      const client = recordClient(tampered.grpcAddress)
      const ids: Array<string> = []
      for (let i = 0; i < 5; i++) {
        ids.push((await client.record({ action: "test.thing.done", metadataJson: JSON.stringify({ i }) })).record!.id)
      }
      client.close()
      expect(await verify(tampered)).toMatchObject({ ok: true, checked: 5 })
      const table = `${tampered.config.dbSchema}.audit_events`
      // A superuser can bypass triggers; the chain still gives it away.
      await sql(
        `SET session_replication_role = replica; UPDATE ${table} SET metadata = '{"i": 99}' WHERE id = '${ids[2]}'`,
      )
      // Before the last checkpoint (the verify above), so only a full walk reads it again (Verify.test.ts).
      expect(await verify(tampered, { full: true })).toEqual({ ok: false, brokenAt: ids[2] })
      const res = await fetch(`${tampered.url}/api/v1/audit/verify?full=true`, { headers: tampered.admin })
      expect(res.status).toBe(200)
      expect(await res.json()).toEqual({ ok: false, brokenAt: ids[2] })
    } finally {
      await tampered.close()
    }
  })
})
