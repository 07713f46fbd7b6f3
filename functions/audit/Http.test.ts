import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AuditLog } from "./AuditLog.ts"
import { type AuditUnderTest, recordClient, startAudit } from "./testing/auditApp.ts"

// Audit's HTTP and gRPC edges on real servers (port 0) over a fresh schema of the real Postgres.
let audit: AuditUnderTest
const alice = randomUUID()
const bob = randomUUID()
const target = randomUUID()

const record = (input: {
  action: string
  actorId: string | null
  at: string
  targetId?: string
  outcome?: "success" | "failure"
}) =>
  Effect.runPromise(
    Effect.flatMap(Effect.service(AuditLog), (log) =>
      log.record({
        id: randomUUID(),
        occurredAt: new Date(input.at).toISOString(),
        actorId: input.actorId,
        action: input.action,
        targetType: input.targetId ? "user" : null,
        targetId: input.targetId ?? null,
        outcome: input.outcome ?? "success",
        requestId: null,
        ip: "203.0.113.7",
        metadata: { note: input.action },
      }),
    ).pipe(Effect.provideContext(audit.running.context)),
  )

beforeAll(async () => {
  audit = await startAudit({ env: { AUDIT_TOPICS: "t-none.events" } })
  // 25 records of alice a minute apart, 5 of bob, one with a target.
  for (let i = 0; i < 25; i++) {
    await record({
      action: "auth.login.succeeded",
      actorId: alice,
      at: `2025-01-01T10:${String(i).padStart(2, "0")}:00Z`,
    })
  }
  for (let i = 0; i < 5; i++) {
    await record({ action: "auth.login.failed", actorId: bob, at: `2025-01-02T10:0${i}:00Z`, outcome: "failure" })
  }
  await record({ action: "identity.user.updated", actorId: alice, at: "2025-01-03T00:00:00Z", targetId: target })
}, 60_000)
afterAll(() => audit?.close())

// audit enforces its own routes: they are called as the harness's administrator (refusals are in ZeroTrust.test.ts).
const fetch = (input: string, init: RequestInit = {}) =>
  globalThis.fetch(input, { ...init, headers: { ...audit.admin, ...(init.headers as Record<string, string>) } })

type Page = {
  items: Array<{ id: string; occurredAt: string; actorId: string; action: string }>
  nextCursor: string | null
}
const get = async (query: string) => {
  const res = await fetch(`${audit.url}/api/v1/audit/events?${query}`)
  return { status: res.status, type: res.headers.get("content-type"), body: (await res.json()) as Page & Problem }
}
type Problem = { code: string; errors?: Array<{ path: string; message: string }> }

describe("audit HTTP", () => {
  it("lists newest first and pages through every record exactly once", async () => {
    const seen: Array<string> = []
    let cursor: string | null = null
    let pages = 0
    do {
      const { status, body } = await get(`actorId=${alice}&limit=10${cursor ? `&cursor=${cursor}` : ""}`)
      expect(status).toBe(200)
      seen.push(...body.items.map((i) => i.occurredAt))
      cursor = body.nextCursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect(seen).toHaveLength(26)
    expect(new Set(seen).size).toBe(26)
    expect(seen).toEqual([...seen].sort().reverse())
    expect(seen[0]).toBe("2025-01-03T00:00:00.000Z")
  })

  it("filters by actor, action, target and time range", async () => {
    const byBob = await get(`actorId=${bob}`)
    expect(byBob.body.items).toHaveLength(5)
    expect(byBob.body.items[0]).toMatchObject({ actorId: bob, action: "auth.login.failed", outcome: "failure" })
    expect((await get("action=identity.user.updated")).body.items.map((i) => i.action)).toContain(
      "identity.user.updated",
    )
    const byTarget = await get(`targetId=${target}`)
    expect(byTarget.body.items).toHaveLength(1)
    expect(byTarget.body.items[0]).toMatchObject({ targetId: target, targetType: "user", ip: "203.0.113.7" })
    const window = await get(`actorId=${alice}&from=2025-01-01T10:05:00Z&to=2025-01-01T10:10:00Z`)
    expect(window.body.items.map((i) => i.occurredAt)).toEqual([
      "2025-01-01T10:09:00.000Z",
      "2025-01-01T10:08:00.000Z",
      "2025-01-01T10:07:00.000Z",
      "2025-01-01T10:06:00.000Z",
      "2025-01-01T10:05:00.000Z",
    ])
    expect((await get(`from=2025-01-02&to=2025-01-03`)).body.items).toHaveLength(5)
    expect((await get(`actorId=${randomUUID()}`)).body).toEqual({ items: [], nextCursor: null })
  })

  it("answers records with their hashes, and verify reports the intact chain", async () => {
    const { body } = await get("limit=1")
    const item = body.items[0] as unknown as { hash: string; prevHash: string; metadata: unknown }
    expect(item.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(item.prevHash).toMatch(/^[0-9a-f]{64}$/)
    expect(item.metadata).toEqual({ note: "identity.user.updated" })
    const res = await fetch(`${audit.url}/api/v1/audit/verify`)
    expect(await res.json()).toEqual({ ok: true, checked: 31, head: item.hash, rechecked: 31 })
  })

  it.each([
    ["actorId=not-a-uuid", "query.actorId"],
    ["from=yesterday", "query.from"],
    ["to=2025-13-45T00:00:00Z", "query.to"],
    ["from=2025-01-01T10:00:00", "query.from"],
    ["from=2025-02-29", "query.from"],
    ["to=2025-04-31T10:00:00Z", "query.to"],
    ["action=DROP%20TABLE", "query.action"],
    ["limit=0", "query.limit"],
    ["limit=abc", "query.limit"],
    ["cursor=garbage", "query.cursor"],
    [`cursor=${Buffer.from(JSON.stringify({ at: "x", id: "y" })).toString("base64url")}`, "query.cursor"],
    ["targetId=", "query.targetId"],
    ["unknown=1", "query.unknown"],
  ])("bad input %s is a 400 validation_failed naming %s", async (query, path) => {
    const { status, type, body } = await get(query)
    expect(status).toBe(400)
    expect(type).toBe("application/problem+json")
    expect(body.code).toBe("validation_failed")
    expect(body.errors?.map((e) => e.path)).toContain(path)
  })

  it("unknown routes and methods are problem+json 4xx", async () => {
    const res = await fetch(`${audit.url}/api/v1/audit/events`, { method: "DELETE" })
    expect(res.status).toBeGreaterThanOrEqual(400)
    expect(res.status).toBeLessThan(500)
    expect(res.headers.get("content-type")).toBe("application/problem+json")
  })
})

describe("audit gRPC Record", () => {
  it("stores a direct write, filling who/where from the call's metadata", async () => {
    const client = recordClient(audit.grpcAddress)
    try {
      const actor = randomUUID()
      const { record: stored } = await client.record(
        { action: "billing.invoice.voided", targetType: "invoice", targetId: "inv-1", metadataJson: '{"amount":5}' },
        { "x-actor": actor, "x-client-ip": "198.51.100.1", "x-request-id": "req-audit-1" },
      )
      expect(stored).toMatchObject({
        actorId: actor,
        ip: "198.51.100.1",
        requestId: "req-audit-1",
        outcome: "success",
        metadataJson: '{"amount":5}',
      })
      const { body } = await get(`actorId=${actor}`)
      expect(body.items).toMatchObject([{ id: stored!.id, action: "billing.invoice.voided", targetId: "inv-1" }])
    } finally {
      client.close()
    }
  })

  it.each([
    [{ action: "" }, "action"],
    [{ action: "Not An Action" }, "action"],
    [{ action: "a.b.c", id: "nope" }, "id"],
    [{ action: "a.b.c", outcome: "maybe" }, "outcome"],
    [{ action: "a.b.c", occurredAt: "soon" }, "occurredAt"],
    [{ action: "a.b.c", metadataJson: "[1]" }, "metadataJson"],
    [{ action: "a.b.c", metadataJson: "{" }, "metadataJson"],
  ])("refuses %o with INVALID_ARGUMENT", async (request, field) => {
    const client = recordClient(audit.grpcAddress)
    try {
      const error = (await client.record(request).catch((e) => e)) as { code: number; details: string }
      expect(error.code).toBe(3)
      expect(JSON.stringify(error)).toContain(field)
    } finally {
      client.close()
    }
  })
})
