import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Retention from "../../shared/Retention.ts"
import { eventually, sql } from "../../shared/testing/harness.ts"
import { type EventRow, Events } from "./Events.ts"
import { DAYS_AHEAD, Partitions } from "./Partitions.ts"
import { type AnalyticsUnderTest, startAnalytics } from "./testing/analyticsApp.ts"

// Raw retention on the real Postgres (ANALYTICS_RAW_RETENTION_DAYS=3): a partition per day of the window made at
// start, days past the window dropped once folded while their rollups stay, rows that came before their day's
// partition moved into it, and event ids past the window pruned by the kernel's retention job.

const DAY = 86_400_000
const reader = randomUUID()
let analytics: AnalyticsUnderTest
beforeAll(async () => {
  analytics = await startAnalytics({ readers: [reader], env: { ANALYTICS_RAW_RETENTION_DAYS: "3" } })
}, 60_000)
afterAll(() => analytics?.close())

const run = <A, E>(effect: Effect.Effect<A, E, any>) =>
  Effect.runPromise(effect.pipe(Effect.provideContext(analytics.running.context as never)) as Effect.Effect<A, E>)

const partitions = async () =>
  (
    await sql(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace
       WHERE n.nspname = $1 AND p.relname = 'events' ORDER BY 1`,
      [analytics.schema],
    )
  ).map((r) => r.name as string)

const dayName = (t: number) => `events_p${new Date(t).toISOString().slice(0, 10).replaceAll("-", "")}`
const row = (name: string, occurredAt: number): EventRow => ({
  id: randomUUID(),
  name,
  occurredAt: new Date(occurredAt),
  userId: "u",
  anonymousId: null,
  properties: {},
  platform: false,
})

describe("raw retention", () => {
  it("makes a partition for every day of the window and a few ahead, at start", async () => {
    const now = Date.now()
    const expected = [dayName(now - 3 * DAY), dayName(now), dayName(now + DAYS_AHEAD * DAY), "events_default"]
    expect(await partitions()).toEqual(expect.arrayContaining(expected))
    expect(await partitions()).not.toContain(dayName(now - 5 * DAY))
  })

  it("drops days past the window once folded, keeps their rollups, and moves early rows into their new partition", async () => {
    const name = `ret_${randomUUID().slice(0, 8)}`
    const now = Date.now()
    const old = now - 2.5 * DAY
    await run(Effect.flatMap(Effect.service(Events), (e) => e.insert([row(name, old), row(name, old), row(name, now)])))
    await eventually("folded", async () => {
      const [r] = await sql(
        `SELECT count(*)::int AS n FROM ${analytics.schema}.events e, ${analytics.schema}.rollup_watermark w
         WHERE (e.txid, e.seq) > (w.last_txid, w.last_seq)`,
      )
      return r!.n === 0
    })
    // Two days later, the day of `old` is past the 3-day window.
    const later = now + 2 * DAY
    const done = await run(Effect.flatMap(Effect.service(Partitions), (p) => p.maintain(later)))
    expect(done.dropped).toBeGreaterThanOrEqual(2)
    expect(await partitions()).not.toContain(dayName(old))
    expect(await partitions()).toContain(dayName(later + DAYS_AHEAD * DAY))
    const [raw] = await sql(`SELECT count(*)::int AS n FROM ${analytics.schema}.events WHERE name = $1`, [name])
    expect(raw!.n).toBe(1)
    const from = new Date(old - DAY).toISOString()
    const to = new Date(now + 60_000).toISOString()
    const response = await fetch(
      `${analytics.url}/api/v1/analytics/timeseries?event=${name}&interval=day&from=${from}&to=${to}`,
      { headers: await analytics.as(reader) },
    )
    const series = (await response.json()) as { points: Array<{ count: number }> }
    expect(series.points.reduce((n, p) => n + p.count, 0)).toBe(3)

    // An event of a day without its partition yet waits in the default partition, and moves in when it is made.
    const ahead = now + (DAYS_AHEAD + 5) * DAY
    await sql(
      `INSERT INTO ${analytics.schema}.events (id, name, occurred_at, actor) VALUES (gen_random_uuid(), $1, $2, 'u')`,
      [name, new Date(ahead)],
    )
    const [waiting] = await sql(`SELECT count(*)::int AS n FROM ${analytics.schema}.events_default WHERE name = $1`, [
      name,
    ])
    expect(waiting!.n).toBe(1)
    await run(Effect.flatMap(Effect.service(Partitions), (p) => p.maintain(ahead)))
    const [moved] = await sql(`SELECT count(*)::int AS n FROM ${analytics.schema}.${dayName(ahead)} WHERE name = $1`, [
      name,
    ])
    expect(moved!.n).toBe(1)
    const [left] = await sql(`SELECT count(*)::int AS n FROM ${analytics.schema}.events_default`)
    expect(left!.n).toBe(0)
  })

  it("prunes event ids past the window with the kernel's retention job", async () => {
    const stale = randomUUID()
    await sql(`INSERT INTO ${analytics.schema}.event_ids (id, occurred_at) VALUES ($1, now() - interval '4 days')`, [
      stale,
    ])
    const fresh = randomUUID()
    await sql(`INSERT INTO ${analytics.schema}.event_ids (id, occurred_at) VALUES ($1, now() - interval '2 days')`, [
      fresh,
    ])
    const counts = await run(Retention.run)
    expect(counts.event_ids).toBeGreaterThanOrEqual(1)
    const ids = await sql(`SELECT id FROM ${analytics.schema}.event_ids WHERE id = ANY($1)`, [[stale, fresh]])
    expect(ids.map((r) => r.id)).toEqual([fresh])
  })
})
