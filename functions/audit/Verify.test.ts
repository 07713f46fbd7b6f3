// Incremental verification of the hash chain on the real Postgres: a verified checkpoint (position + hash) makes the
// next `verify` re-hash only what was appended since; `?full=true` still walks everything, and a checkpoint whose
// record changed is not trusted.
import { randomUUID } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { canonicalEncoding, canonicalEncodingOf, GENESIS_HASH, hashOf, type NewRecord } from "./AuditRecord.ts"
import { type AuditUnderTest, recordClient, startAudit } from "./testing/auditApp.ts"

let audit: AuditUnderTest
let table: string

const verify = async (query = "") => {
  const res = await fetch(`${audit.url}/api/v1/audit/verify${query}`, { headers: audit.admin })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

const append = async (n: number) => {
  const client = recordClient(audit.grpcAddress)
  const ids: Array<string> = []
  for (let i = 0; i < n; i++) {
    ids.push((await client.record({ action: "test.thing.done", metadataJson: JSON.stringify({ i }) })).record!.id)
  }
  client.close()
  return ids
}

// Writes `n` chained records straight into the table (what a year of appends leaves), continuing from the head.
const appendChain = async (n: number) => {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    const [head] = (await client.query(`SELECT hash FROM ${table} ORDER BY seq DESC LIMIT 1`)).rows
    let prev: string = head?.hash ?? GENESIS_HASH
    const start = Date.parse("2026-01-01T00:00:00Z")
    for (let done = 0; done < n; ) {
      const size = Math.min(50_000, n - done)
      const columns: Array<Array<string>> = Array.from({ length: 6 }, () => [])
      for (let i = 0; i < size; i++) {
        const record: NewRecord = {
          id: randomUUID(),
          occurredAt: new Date(start + done + i).toISOString(),
          actorId: null,
          action: "test.bulk.done",
          targetType: null,
          targetId: `t${done + i}`,
          outcome: "success",
          requestId: null,
          ip: null,
          metadata: {},
        }
        const hash = hashOf(record, prev)
        for (const [k, v] of [record.id, record.occurredAt, record.targetId!, "{}", hash, prev].entries()) {
          columns[k]!.push(v)
        }
        prev = hash
      }
      await client.query(
        `INSERT INTO ${table} (id, occurred_at, action, target_id, outcome, metadata, hash, prev_hash)
         SELECT id, at::timestamptz, 'test.bulk.done', target, 'success', meta::jsonb, hash, prev
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
           WITH ORDINALITY AS r(id, at, target, meta, hash, prev, n) ORDER BY n`,
        columns,
      )
      done += size
    }
  } finally {
    await client.end()
  }
}

beforeAll(async () => {
  audit = await startAudit({ env: { AUDIT_TOPICS: "t-none.events" } })
  table = `${audit.config.dbSchema}.audit_events`
}, 60_000)
afterAll(async () => {
  await audit?.close()
})

describe("audit verify", () => {
  it("re-hashes only what was appended since the last verification; full=true walks everything", async () => {
    await append(5)
    expect(await verify()).toMatchObject({ status: 200, body: { ok: true, checked: 5, rechecked: 5 } })
    expect(await verify()).toMatchObject({ status: 200, body: { ok: true, checked: 5, rechecked: 0 } })
    const last = (await append(3)).at(-1)
    const after = await verify()
    expect(after).toMatchObject({ status: 200, body: { ok: true, checked: 8, rechecked: 3 } })
    const [head] = await sql(`SELECT hash FROM ${table} WHERE id = $1`, [last])
    expect(after.body.head).toBe(head!.hash)
    expect(await verify("?full=true")).toMatchObject({ body: { ok: true, checked: 8, rechecked: 8, head: head!.hash } })
    expect(await verify("?full=false")).toMatchObject({ body: { ok: true, checked: 8, rechecked: 0 } })
  })

  it("finds a record altered after the checkpoint, one before it with full=true, and distrusts a changed checkpoint", async () => {
    const ids = await append(4)
    expect((await verify()).body).toMatchObject({ ok: true, rechecked: 4 })
    const more = await append(2)
    // A superuser bypassing the append-only trigger: after the checkpoint, the incremental walk finds it.
    const tamper = (id: string) =>
      sql(`SET session_replication_role = replica; UPDATE ${table} SET metadata = '{"x": 1}' WHERE id = '${id}'`)
    await tamper(more[0]!)
    expect(await verify()).toEqual({ status: 200, body: { ok: false, brokenAt: more[0] } })
    // Before the checkpoint, only a full walk reads it again: that is what full=true is for.
    expect((await verify("?full=true")).body).toEqual({ ok: false, brokenAt: more[0] })
    // The checkpoint's own record altered: the checkpoint is not trusted and the whole chain is walked.
    const [checkpoint] = await sql(
      `SELECT e.id FROM ${audit.config.dbSchema}.audit_checkpoints c JOIN ${table} e USING (seq) ORDER BY seq DESC LIMIT 1`,
    )
    expect(checkpoint!.id).toBe(ids[3])
    await tamper(ids[1]!)
    expect((await verify()).body).toEqual({ ok: false, brokenAt: more[0] })
    expect((await verify("?full=true")).body).toEqual({ ok: false, brokenAt: ids[1] })
    await tamper(ids[3]!)
    expect((await verify()).body).toEqual({ ok: false, brokenAt: ids[1] })
  })

  it("refuses a full value that is not true or false with a 400 naming it", async () => {
    const res = await verify("?full=yes")
    expect(res.status).toBe(400)
    expect(JSON.stringify(res.body)).toMatch(/full/)
  })
})

describe("the canonical encoding", () => {
  it("is byte for byte the general sorted-key JSON, whatever the record holds", () => {
    const records: Array<NewRecord> = [
      {
        id: "a",
        occurredAt: "2026-01-01T00:00:00.000Z",
        actorId: null,
        action: "x.y.z",
        targetType: null,
        targetId: null,
        outcome: "success",
        requestId: null,
        ip: null,
        metadata: {},
      },
      {
        id: randomUUID(),
        occurredAt: "2026-12-03T18:00:00.123Z",
        actorId: randomUUID(),
        action: "identity.user.updated",
        targetType: "user",
        targetId: 't\u0000"quoted" ✓ 𝄞',
        outcome: "failure",
        requestId: "req-1",
        ip: "2001:db8::1",
        metadata: { z: [1, { b: 2, a: null }], a: "é", m: { y: true, x: 1.5 }, skipped: undefined },
      },
      // A field missing at run time (a sloppy caller) is left out, as the general encoding leaves it out.
      { id: "b", action: "x.y.z", outcome: "success", metadata: { k: "v" } } as unknown as NewRecord,
    ]
    for (const record of records) {
      expect(canonicalEncoding(record, "f".repeat(64))).toBe(canonicalEncodingOf(record, "f".repeat(64)))
    }
  })
})

describe("audit verify on a million records", () => {
  let fresh: AuditUnderTest
  beforeAll(async () => {
    fresh = await startAudit({ env: { AUDIT_TOPICS: "t-none.events" } })
  }, 60_000)
  afterAll(async () => {
    await fresh?.close()
  })

  it("verifies incrementally in well under a second after a full verify", async () => {
    ;[audit, fresh] = [fresh, audit]
    try {
      table = `${audit.config.dbSchema}.audit_events`
      // The list filters' indexes are not what this measures (verify walks the primary key): without them the
      // million rows go in several times faster.
      for (const index of ["time", "actor", "target", "action"]) {
        await sql(`DROP INDEX ${audit.config.dbSchema}.audit_events_${index}`)
      }
      await appendChain(1_000_000)
      const full = await verify()
      expect(full.body).toMatchObject({ ok: true, checked: 1_000_000, rechecked: 1_000_000 })
      await append(10)
      const started = performance.now()
      const incremental = await verify()
      const took = performance.now() - started
      expect(incremental.body).toMatchObject({ ok: true, checked: 1_000_010, rechecked: 10 })
      // Generous for a noisy shared machine: it reads a checkpoint, one record and ten new ones.
      expect(took).toBeLessThan(1_000)
    } finally {
      ;[audit, fresh] = [fresh, audit]
    }
  }, 300_000)
})
