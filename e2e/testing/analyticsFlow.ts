import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import { eventually } from "../../shared/testing/harness.ts"
import { callerOf } from "./platformFlow.ts"

/**
 * Analytics' story through the gateway, as anonymous visitors, a signed-in customer holding no permission
 * (`customerToken`) and the administrator (every permission, `adminToken`): a batch of client-made events accepted
 * (202), the same batch again all duplicates, an id twice in one batch counted once; a batch with one bad event (a
 * non-scalar property, a name under a platform prefix) a 400 naming that event, nothing of it written; the customer's
 * events (their user from the bearer token) and visitors' in a 2-step funnel; reports refused to anonymous callers
 * (401) and to the customer (403); for the administrator the time series, top values and funnel of this run's events,
 * exact, within a few seconds, and the overview counting at least what the flows before made: the sign-ups and logins
 * (`made`), the blog's published post, billing's active subscription and its MRR.
 */
export const runAnalyticsFlow = async (
  url: string,
  adminToken: string,
  customerToken: string,
  /** How many sign-ups and logins the flow made before this one (the overview counts at least those). */
  made: { readonly signups: number; readonly logins: number },
) => {
  const call = callerOf(url)
  const admin = { token: adminToken }
  const customer = { token: customerToken }
  // Names of this run only: every count of them is the flow's own.
  const tag = randomUUID().slice(0, 8)
  const view = `flow-${tag}.page_view`
  const cart = `flow-${tag}.cart`
  const checkout = `flow-${tag}.checkout`
  const ingest = (events: ReadonlyArray<Record<string, unknown>>, token?: string) =>
    call("POST", "/api/v1/analytics/events", { body: { events }, ...(token ? { token } : {}) })
  const viewOf = (visitor: string, path: string, extra: Record<string, unknown> = {}) => ({
    id: randomUUID(),
    name: view,
    anonymousId: `visitor-${tag}-${visitor}`,
    properties: { path, referrer: "newsletter", scrolled: 0.5, returning: false, campaign: null, ...extra },
  })

  // Anonymous visitors' page views: accepted, then the same batch again is all duplicates.
  const batch = [
    viewOf("a", "/pricing"),
    viewOf("a", "/docs"),
    viewOf("b", "/pricing"),
    viewOf("c", "/pricing"),
    viewOf("c", "/blog"),
  ]
  const accepted = await ingest(batch)
  expect(accepted.status, accepted.text).toBe(202)
  expect(accepted.body).toEqual({ accepted: 5, duplicates: 0 })
  const again = await ingest(batch)
  expect(again.status, again.text).toBe(202)
  expect(again.body).toEqual({ accepted: 0, duplicates: 5 })
  // The same id twice in one batch is counted once.
  const twice = viewOf("b", "/docs")
  const repeated = await ingest([twice, viewOf("d", "/pricing"), twice])
  expect(repeated.body).toEqual({ accepted: 2, duplicates: 1 })

  // One bad event refuses its whole batch: a 400 naming it, and none of the batch written (its good event is new
  // when sent again afterwards).
  const good = viewOf("e", "/pricing")
  for (const [bad, path] of [
    [viewOf("e", "/docs", { nested: { a: 1 } }), "events.1.properties.nested"],
    [{ ...viewOf("e", "/docs"), name: "billing.x" }, "events.1.name"],
  ] as const) {
    const refused = await ingest([good, bad])
    expect(refused.status, refused.text).toBe(400)
    expect(refused.headers.get("content-type")).toContain("application/problem+json")
    expect(refused.body.code).toBe("validation_failed")
    expect(refused.body.errors.map((e: { path: string }) => e.path)).toEqual([path])
  }
  expect((await ingest([good])).body).toEqual({ accepted: 1, duplicates: 0 })
  // Page views: a 2 /pricing, b /pricing, c /pricing, c /blog, a /docs, b /docs, d /pricing, e /pricing.
  const views = 8

  // A funnel, cart then checkout: the signed-in customer (their user from the token) and visitor a do both, visitor
  // b only the cart, visitor c checks out without a cart (not a funnel's second step).
  const at = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1_000).toISOString()
  const step = (name: string, secondsAgo: number, visitor?: string) => ({
    id: randomUUID(),
    name,
    occurredAt: at(secondsAgo),
    ...(visitor ? { anonymousId: `visitor-${tag}-${visitor}` } : {}),
    properties: { currency: "EUR" },
  })
  const mine = await ingest([step(cart, 20), step(checkout, 10)], customerToken)
  expect(mine.status, mine.text).toBe(202)
  expect(mine.body).toEqual({ accepted: 2, duplicates: 0 })
  const theirs = await ingest([
    step(cart, 30, "a"),
    step(checkout, 25, "a"),
    step(cart, 15, "b"),
    step(checkout, 5, "c"),
  ])
  expect(theirs.body).toEqual({ accepted: 4, duplicates: 0 })

  // Reports: only for analytics.report.read (the administrator).
  const from = at(3_600)
  const to = new Date(Date.now() + 60_000).toISOString()
  const range = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`
  const reports = [
    `/api/v1/analytics/timeseries?event=${view}&interval=minute&${range}`,
    `/api/v1/analytics/top?event=${view}&property=path&${range}`,
    `/api/v1/analytics/funnel?steps=${cart},${checkout}&windowSeconds=3600&${range}`,
    `/api/v1/analytics/overview?${range}`,
  ]
  for (const path of reports) {
    expect((await call("GET", path)).status, path).toBe(401)
    const forbidden = await call("GET", path, customer)
    expect(forbidden.status, path).toBe(403)
    expect(forbidden.headers.get("content-type")).toContain("application/problem+json")
  }

  // A report polled a few times a second (the gateway's rate limits stay far).
  const report = async (path: string) => {
    const answer = await call("GET", path, admin)
    expect(answer.status, answer.text).toBe(200)
    return answer.body
  }
  const within = (what: string, check: () => Promise<boolean>, timeoutMs = 5_000) =>
    eventually(
      what,
      async () => {
        if (await check()) return true
        await new Promise((resolve) => setTimeout(resolve, 100))
        return false
      },
      timeoutMs,
    )
  const total = (points: ReadonlyArray<{ count: number }>) => points.reduce((sum, p) => sum + p.count, 0)

  // The time series: every page view, within a few seconds; where path = /pricing.
  const shown = await within(
    "the page views in the time series",
    async () => total((await report(reports[0]!)).points) === views,
  )
  expect(shown).toBeLessThan(5_000)
  const series = await report(reports[0]!)
  expect(series.interval).toBe("minute")
  expect(total(series.points)).toBe(views)
  const hourly = await report(
    `/api/v1/analytics/timeseries?event=${view}&interval=hour&${range}&property=path&value=/pricing`,
  )
  expect(hourly.interval).toBe("hour")
  expect(total(hourly.points)).toBe(5)
  // Five visitors viewed /pricing: their unique count, when the views fell in one hour (not across its end).
  const filled = hourly.points.filter((p: { count: number }) => p.count > 0)
  if (filled.length === 1) expect(filled[0].uniques).toBe(5)

  // The top values of a property, the funnel's steps, exactly as sent.
  expect((await report(reports[1]!)).items).toEqual([
    { value: "/pricing", count: 5 },
    { value: "/docs", count: 2 },
    { value: "/blog", count: 1 },
  ])
  expect((await report(`/api/v1/analytics/top?event=${view}&property=referrer&${range}&limit=1`)).items).toEqual([
    { value: "newsletter", count: views },
  ])
  await within("the funnel's steps", async () => (await report(reports[2]!)).steps[1]?.users === 2)
  expect((await report(reports[2]!)).steps).toEqual([
    { event: cart, users: 3 },
    { event: checkout, users: 2 },
  ])

  // The overview: the platform's events, counted from every producer's topic (the flows before this one made them).
  type Overview = {
    signups: number
    logins: number
    posts: number
    activeUsers: { day: number }
    subscriptions: { active: number }
    mrr: { amount: number; currency: string | null }
  }
  let overview: Overview | undefined
  await within(
    "the overview to count the platform's events",
    async () => {
      overview = (await report(reports[3]!)) as Overview
      const o = overview
      return (
        o.signups >= made.signups &&
        o.logins >= made.logins &&
        o.posts >= 1 &&
        o.subscriptions.active >= 1 &&
        o.mrr.amount > 0
      )
    },
    20_000,
  ).catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(overview)}`)
  })
  expect(overview!.activeUsers.day).toBeGreaterThanOrEqual(made.signups)
  expect(overview!.mrr.currency).toMatch(/^[A-Z]{3}$/)
}
