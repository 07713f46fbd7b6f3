import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EventRow, Events } from "./Events.ts"
import { type AnalyticsUnderTest, startAnalytics } from "./testing/analyticsApp.ts"

// Funnels on a hand-made dataset, on the real Postgres: each user's first step-1 event in the range starts their
// window; each next step counts when it comes strictly after the previous step, within windowSeconds of the first.

const reader = randomUUID()
let analytics: AnalyticsUnderTest
const tag = randomUUID().slice(0, 8)
const [a, b, c] = [`a_${tag}`, `b_${tag}`, `c_${tag}`]
const base = Math.floor(Date.now() / 60_000) * 60_000 - 3_600_000

// user: [event, seconds from base]...
const dataset: Record<string, Array<[string, number]>> = {
  all3: [
    [a, 0],
    [b, 10],
    [c, 20],
  ],
  lateB: [
    [a, 0],
    [b, 70],
  ],
  bFirst: [
    [b, 0],
    [a, 10],
    [c, 20],
  ],
  lateC: [
    [a, 0],
    [b, 5],
    [c, 100],
  ],
  repeatedA: [
    [a, 0],
    [a, 30],
    [b, 40],
    [c, 50],
  ],
  onlyC: [[c, 0]],
  cBeforeB: [
    [a, 0],
    [c, 5],
    [b, 10],
  ],
  aBeforeRange: [
    [a, -100],
    [b, 10],
    [c, 20],
    [a, 200],
    [b, 210],
    [c, 220],
  ],
  sameInstant: [
    [a, 0],
    [b, 0],
  ],
}

beforeAll(async () => {
  analytics = await startAnalytics({ readers: [reader] })
  const rows: Array<EventRow> = Object.entries(dataset).flatMap(([user, steps]) =>
    steps.map(([name, seconds]) => ({
      id: randomUUID(),
      name,
      occurredAt: new Date(base + seconds * 1000),
      userId: user === "anonymous" ? null : `${tag}-${user}`,
      anonymousId: null,
      properties: {},
      platform: false,
    })),
  )
  // An anonymous visitor is a user too (by its anonymous id); an event with neither is no one's.
  rows.push(
    {
      id: randomUUID(),
      name: a,
      occurredAt: new Date(base),
      userId: null,
      anonymousId: "dev",
      properties: {},
      platform: false,
    },
    {
      id: randomUUID(),
      name: b,
      occurredAt: new Date(base + 1000),
      userId: null,
      anonymousId: "dev",
      properties: {},
      platform: false,
    },
    {
      id: randomUUID(),
      name: a,
      occurredAt: new Date(base),
      userId: null,
      anonymousId: null,
      properties: {},
      platform: false,
    },
  )
  await Effect.runPromise(
    Effect.flatMap(Effect.service(Events), (events) => events.insert(rows)).pipe(
      Effect.provideContext(analytics.running.context as never),
    ),
  )
}, 60_000)
afterAll(() => analytics?.close())

const funnel = async (steps: ReadonlyArray<string>, windowSeconds: number) => {
  const from = new Date(base - 50_000).toISOString()
  const to = new Date(base + 1_000_000).toISOString()
  const response = await fetch(
    `${analytics.url}/api/v1/analytics/funnel?steps=${steps.join(",")}&windowSeconds=${windowSeconds}&from=${from}&to=${to}`,
    { headers: await analytics.as(reader) },
  )
  expect(response.status).toBe(200)
  return ((await response.json()) as { steps: Array<{ event: string; users: number }> }).steps
}

describe("funnel", () => {
  it("counts users through ordered steps within the window (3 steps, 60 s)", async () => {
    // Step 1: all but onlyC (8 users + the anonymous visitor); step 2: all3, lateC, repeatedA, cBeforeB, aBeforeRange
    // (from its a at 200 s: the one at -100 s is before the range), the visitor; step 3: all3, repeatedA, aBeforeRange.
    expect(await funnel([a, b, c], 60)).toEqual([
      { event: a, users: 9 },
      { event: b, users: 6 },
      { event: c, users: 3 },
    ])
  })

  it("widens with the window, and follows the steps' order", async () => {
    // 100 s: lateB's b at 70 s and lateC's c at 100 s (the window's last second) count.
    expect(await funnel([a, b, c], 100)).toEqual([
      { event: a, users: 9 },
      { event: b, users: 7 },
      { event: c, users: 4 },
    ])
    // b then a: every user with a b but onlyC (8) and the visitor; only bFirst's a follows its b (at 10 s):
    // aBeforeRange's first b in the range is at 10 s and its a at 200 s is past 60 s; sameInstant's a is not after.
    expect(await funnel([b, a], 60)).toEqual([
      { event: b, users: 9 },
      { event: a, users: 1 },
    ])
  })
})
