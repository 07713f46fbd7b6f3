import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { type AnalyticsUnderTest, startAnalytics } from "./testing/analyticsApp.ts"

// Analytics' ingestion as main.ts runs it on the real Postgres: ids deduplicated by their unique key (in a batch and
// across batches), a signed-in caller's user id, and bad input refused whole with a 4xx naming the field.

const reader = randomUUID()
let analytics: AnalyticsUnderTest
beforeAll(async () => {
  analytics = await startAnalytics({ readers: [reader] })
}, 60_000)
afterAll(() => analytics?.close())

type Problem = { status: number; code: string; errors?: Array<{ path: string; message: string }> }

const ingest = async (body: unknown, headers: Record<string, string> = {}) => {
  const response = await fetch(`${analytics.url}/api/v1/analytics/events`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, body: (text === "" ? {} : JSON.parse(text)) as Problem & Record<string, unknown> }
}

const stored = async () => {
  const [row] = await sql(`SELECT count(*)::int AS n FROM ${analytics.schema}.events`)
  return row!.n as number
}

const event = (extra: Record<string, unknown> = {}) => ({ id: randomUUID(), name: "page_view", ...extra })

describe("ingestion", () => {
  it("counts an id once: twice in one batch, and again in a later batch (duplicates in the answer)", async () => {
    const before = await stored()
    const a = event({ properties: { path: "/pricing" } })
    const b = event()
    const first = await ingest({ events: [a, b, a] })
    expect(first.status).toBe(202)
    expect(first.body).toEqual({ accepted: 2, duplicates: 1 })
    const again = await ingest({ events: [b, event(), { ...a, name: "other" }] })
    expect(again.body).toEqual({ accepted: 1, duplicates: 2 })
    expect(await stored()).toBe(before + 3)
    const [row] = await sql(
      `SELECT name, properties, user_id, anonymous_id FROM ${analytics.schema}.events WHERE id = $1`,
      [a.id],
    )
    expect(row).toEqual({ name: "page_view", properties: { path: "/pricing" }, user_id: null, anonymous_id: null })
  })

  it("keeps one copy of an id sent by many concurrent batches", async () => {
    const shared = event()
    const answers = await Promise.all(Array.from({ length: 20 }, () => ingest({ events: [shared, event()] })))
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(202))
    expect(answers.reduce((n, a) => n + (a.body.accepted as number), 0)).toBe(21)
    const [row] = await sql(`SELECT count(*)::int AS n FROM ${analytics.schema}.events WHERE id = $1`, [shared.id])
    expect(row!.n).toBe(1)
  })

  it("makes a signed-in caller the events' user; an invalid token is a 401 and writes nothing", async () => {
    const user = randomUUID()
    const mine = event({ anonymousId: "device-1" })
    expect((await ingest({ events: [mine] }, await analytics.as(user))).status).toBe(202)
    const [row] = await sql(`SELECT user_id, anonymous_id, actor FROM ${analytics.schema}.events WHERE id = $1`, [
      mine.id,
    ])
    expect(row).toEqual({ user_id: user, anonymous_id: "device-1", actor: user })
    const anonymous = event({ anonymousId: "device-2" })
    await ingest({ events: [anonymous] })
    const [anon] = await sql(`SELECT actor FROM ${analytics.schema}.events WHERE id = $1`, [anonymous.id])
    expect(anon!.actor).toBe("anon:device-2")
    const before = await stored()
    for (const authorization of ["Bearer not-a-token", "Basic abc"]) {
      const refused = await ingest({ events: [event()] }, { authorization })
      expect(refused.status).toBe(401)
    }
    expect(await stored()).toBe(before)
  })

  const day = 86_400_000
  const refusals: Array<[string, unknown, string]> = [
    ["too many events", { events: Array.from({ length: 101 }, () => event()) }, "events"],
    ["no events", { events: [] }, "events"],
    [
      "too many properties",
      { events: [event({ properties: Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`p${i}`, i])) })] },
      "events.0.properties",
    ],
    [
      "an oversized property value",
      { events: [event(), event({ properties: { q: "x".repeat(513) } })] },
      "events.1.properties.q",
    ],
    ["an object as a value", { events: [event({ properties: { nested: { a: 1 } } })] }, "events.0.properties.nested"],
    ["an array as a value", { events: [event({ properties: { list: [1, 2] } })] }, "events.0.properties.list"],
    ["a bad property name", { events: [event({ properties: { "has space": 1 } })] }, "events.0.properties.has space"],
    ["an id that is not a UUID", { events: [event({ id: "42" })] }, "events.0.id"],
    ["no id", { events: [{ name: "page_view" }] }, "events.0.id"],
    ["a bad name", { events: [event({ name: "no spaces allowed" })] }, "events.0.name"],
    ["a platform event's name", { events: [event({ name: "identity.user.created" })] }, "events.0.name"],
    ["a date that is not RFC 3339", { events: [event({ occurredAt: "yesterday" })] }, "events.0.occurredAt"],
    // Date.parse would roll it over into March.
    ["a day that does not exist", { events: [event({ occurredAt: "2026-02-31T00:00:00Z" })] }, "events.0.occurredAt"],
    [
      "a date past the raw retention",
      { events: [event({ occurredAt: new Date(Date.now() - 91 * day).toISOString() })] },
      "events.0.occurredAt",
    ],
    [
      "a date in the future",
      { events: [event(), event({ occurredAt: new Date(Date.now() + 600_000).toISOString() })] },
      "events.1.occurredAt",
    ],
    ["an unknown field", { events: [event({ extra: true })] }, "events.0.extra"],
  ]
  for (const [what, body, path] of refusals) {
    it(`refuses ${what} with a 400 naming ${path}, writing nothing`, async () => {
      const before = await stored()
      const answer = await ingest(body)
      expect(answer.status, JSON.stringify(answer.body)).toBe(400)
      expect(answer.body.code).toBe("validation_failed")
      expect(answer.body.errors?.map((e) => e.path)).toContain(path)
      expect(await stored()).toBe(before)
    })
  }

  it("takes 100 events at the limits (30 properties, 512-character strings, dates at the window's edges)", async () => {
    const properties = Object.fromEntries(
      Array.from({ length: 30 }, (_, i) => [`p${i}`, i % 3 === 0 ? "y".repeat(512) : i % 3 === 1 ? i : null]),
    )
    const events = Array.from({ length: 100 }, (_, i) =>
      event({
        properties: i < 5 ? properties : { p: i },
        occurredAt: new Date(Date.now() - (i === 0 ? 89 * day : i === 1 ? -200_000 : 0)).toISOString(),
      }),
    )
    const answer = await ingest({ events })
    expect(answer.status, JSON.stringify(answer.body)).toBe(202)
    expect(answer.body).toEqual({ accepted: 100, duplicates: 0 })
  })

  it("refuses a body over 256 KiB with a 413 and broken JSON with a 400", async () => {
    const big = {
      events: [
        event({ properties: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`p${i}`, "z".repeat(512)])) }),
      ],
    }
    const many = { events: Array.from({ length: 100 }, () => big.events[0]) }
    expect(JSON.stringify(many).length).toBeGreaterThan(256 * 1024)
    const before = await stored()
    expect((await ingest(many)).status).toBe(413)
    expect((await ingest("{not json")).status).toBe(400)
    expect(await stored()).toBe(before)
  })
})

describe("reports' access and ranges", () => {
  const now = Date.now()
  const iso = (t: number) => new Date(t).toISOString()
  const get = async (path: string, headers: Record<string, string>) => {
    const response = await fetch(`${analytics.url}${path}`, { headers })
    return { status: response.status, body: (await response.json()) as Problem }
  }

  it("needs analytics.report.read: 401 without a token, 403 without the permission", async () => {
    const path = `/api/v1/analytics/overview?from=${iso(now - 3_600_000)}&to=${iso(now)}`
    expect((await get(path, {})).status).toBe(401)
    expect((await get(path, await analytics.as(randomUUID()))).status).toBe(403)
    expect((await get(path, await analytics.as(reader))).status).toBe(200)
  })

  it("treats a property named like an object's inherited member (toString) as any other: absent, not a 500", async () => {
    const headers = await analytics.as(reader)
    const name = `inherited_${randomUUID().slice(0, 8)}`
    expect((await ingest({ events: [event({ name, properties: { path: "/a" } })] })).status).toBe(202)
    const range = `from=${iso(now - 3_600_000)}&to=${iso(Date.now() + 60_000)}`
    const top = await get(`/api/v1/analytics/top?event=${name}&property=toString&${range}`, headers)
    expect(top).toEqual({ status: 200, body: { items: [] } })
    const series = await get(
      `/api/v1/analytics/timeseries?event=${name}&interval=hour&property=toString&value=x&${range}`,
      headers,
    )
    expect(series.status).toBe(200)
  })

  it("refuses a range over 400 days, over 10,000 points, backwards, or not RFC 3339, naming the field", async () => {
    const headers = await analytics.as(reader)
    const cases: Array<[string, string]> = [
      [`/api/v1/analytics/overview?from=${iso(now - 401 * 86_400_000)}&to=${iso(now)}`, "query.to"],
      [
        `/api/v1/analytics/timeseries?event=a&interval=minute&from=${iso(now - 8 * 86_400_000)}&to=${iso(now)}`,
        "query.interval",
      ],
      [`/api/v1/analytics/top?event=a&property=p&from=${iso(now)}&to=${iso(now - 1000)}`, "query.to"],
      [`/api/v1/analytics/funnel?steps=a&windowSeconds=60&from=${iso(now - 1000)}&to=${iso(now)}`, "query.steps"],
      [
        `/api/v1/analytics/funnel?steps=a,b&windowSeconds=0&from=${iso(now - 1000)}&to=${iso(now)}`,
        "query.windowSeconds",
      ],
      [`/api/v1/analytics/timeseries?event=a&interval=hour&from=2026-01-01&to=${iso(now)}`, "query.from"],
      [`/api/v1/analytics/timeseries?event=a&interval=day&from=2026-02-30T00:00:00Z&to=${iso(now)}`, "query.from"],
      [`/api/v1/analytics/timeseries?event=a&interval=week&from=${iso(now - 1000)}&to=${iso(now)}`, "query.interval"],
      [
        `/api/v1/analytics/timeseries?event=a&interval=minute&property=p&value=v&from=${iso(now - 1000)}&to=${iso(now)}`,
        "query.interval",
      ],
      [
        `/api/v1/analytics/timeseries?event=a&interval=hour&property=p&from=${iso(now - 1000)}&to=${iso(now)}`,
        "query.value",
      ],
    ]
    for (const [path, field] of cases) {
      const answer = await get(path, headers)
      expect(answer.status, path).toBe(400)
      expect(
        answer.body.errors?.map((e) => e.path),
        path,
      ).toContain(field)
    }
  })
})
