// The test clock routes as main.ts runs billing (the real Postgres, authz's answers stood in for): create and advance
// for billing.testclock.manage only, a subscription on a clock renewed by its advance through the HTTP API, bad input
// as 400s naming the field, Idempotency-Key on create, and 404 when BILLING_TEST_CLOCKS is off.
import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BillingUnderTest, startBilling } from "./testing/billingApp.ts"

const manager = randomUUID()
const customer = randomUUID()
const grants = { [manager]: ["billing.testclock.manage", "billing.plan.create", "billing.invoice.read.any"] }

let billing: BillingUnderTest
const json = (user: Record<string, string>) => ({ ...user, "content-type": "application/json" })
let asManager: Record<string, string>
let asCustomer: Record<string, string>

beforeAll(async () => {
  billing = await startBilling({ grants })
  asManager = json(await billing.as(manager))
  asCustomer = json(await billing.as(customer))
}, 60_000)
afterAll(() => billing?.close())

const post = (path: string, headers: Record<string, string>, body: unknown) =>
  fetch(`${billing.url}/api/v1/billing${path}`, { method: "POST", headers, body: JSON.stringify(body) })

describe("test clocks over HTTP", () => {
  it("creates a clock (201, Idempotency-Key replayed) and advances it, renewing a subscription on it", async () => {
    const keyed = { ...asManager, "idempotency-key": randomUUID() }
    const created = await post("/test-clocks", keyed, { frozenTime: "2026-01-01T00:00:00Z" })
    expect(created.status).toBe(201)
    const clock = (await created.json()) as { id: string; frozenTime: string }
    expect(clock.frozenTime).toBe("2026-01-01T00:00:00.000Z")
    const again = await post("/test-clocks", keyed, { frozenTime: "2026-01-01T00:00:00Z" })
    expect(again.status).toBe(201)
    expect(await again.json()).toEqual(clock)

    const plan = await post("/plans", asManager, {
      code: `weekly-${randomUUID().slice(0, 8)}`,
      name: "Weekly",
      amount: 700,
      currency: "EUR",
      interval: "week",
    })
    expect(plan.status).toBe(201)
    const { id: planId } = (await plan.json()) as { id: string }
    // The manager subscribes on the clock (a subscription on a clock needs billing.testclock.manage).
    const method = await fetch(`${billing.url}/api/v1/billing/payment-method`, {
      method: "PUT",
      headers: asManager,
      body: JSON.stringify({ token: "tok_visa" }),
    })
    expect(method.status).toBe(200)
    const subscribed = await post("/subscriptions", asManager, { planId, testClockId: clock.id })
    expect(subscribed.status).toBe(201)
    const subscription = (await subscribed.json()) as { id: string; currentPeriodEnd: string }
    expect(subscription.currentPeriodEnd).toBe("2026-01-08T00:00:00.000Z")

    const advanced = await post(`/test-clocks/${clock.id}/advance`, asManager, { to: "2026-01-22T00:00:00Z" })
    expect(advanced.status).toBe(200)
    expect(await advanced.json()).toEqual({ id: clock.id, frozenTime: "2026-01-22T00:00:00.000Z" })
    const invoices = await fetch(`${billing.url}/api/v1/billing/invoices/me`, { headers: asManager })
    const page = (await invoices.json()) as { items: Array<{ status: string; periodStart: string }> }
    expect(page.items.map((i) => [i.status, i.periodStart]).sort()).toEqual([
      ["paid", "2026-01-01T00:00:00.000Z"],
      ["paid", "2026-01-08T00:00:00.000Z"],
      ["paid", "2026-01-15T00:00:00.000Z"],
      ["paid", "2026-01-22T00:00:00.000Z"],
    ])
  })

  it("refuses callers without billing.testclock.manage (403) and bad input (400 naming the field)", async () => {
    expect((await post("/test-clocks", asCustomer, {})).status).toBe(403)
    const created = await post("/test-clocks", asManager, {})
    expect(created.status).toBe(201)
    const clock = (await created.json()) as { id: string; frozenTime: string }
    expect(Math.abs(new Date(clock.frozenTime).getTime() - Date.now())).toBeLessThan(60_000)
    expect((await post(`/test-clocks/${clock.id}/advance`, asCustomer, { to: "2030-01-01T00:00:00Z" })).status).toBe(
      403,
    )
    const bodies = [{}, { to: "tomorrow" }, { to: "2030-02-31T00:00:00Z" }, { to: "2020-01-01T00:00:00Z" }]
    for (const body of [...bodies, { to: "2099-01-01T00:00:00Z" }]) {
      const refused = await post(`/test-clocks/${clock.id}/advance`, asManager, body)
      expect([JSON.stringify(body), refused.status]).toEqual([JSON.stringify(body), 400])
      const problem = (await refused.json()) as { errors: Array<{ path: string }> }
      expect(problem.errors.map((e) => e.path)).toContain("to")
    }
    expect((await post("/test-clocks", asManager, { frozenTime: "not a time" })).status).toBe(400)
    expect((await post(`/test-clocks/${randomUUID()}/advance`, asManager, { to: "2099-01-01T00:00:00Z" })).status).toBe(
      404,
    )
    expect((await post(`/test-clocks/not-a-uuid/advance`, asManager, { to: "2099-01-01T00:00:00Z" })).status).toBe(400)
  })
})

describe("test clocks off (BILLING_TEST_CLOCKS=false)", () => {
  let off: BillingUnderTest
  beforeAll(async () => {
    off = await startBilling({ grants, env: { BILLING_TEST_CLOCKS: "false" } })
  }, 60_000)
  afterAll(() => off?.close())

  it("answers 404 to both routes", async () => {
    const headers = json(await off.as(manager))
    const created = await fetch(`${off.url}/api/v1/billing/test-clocks`, { method: "POST", headers, body: "{}" })
    expect(created.status).toBe(404)
    const advanced = await fetch(`${off.url}/api/v1/billing/test-clocks/${randomUUID()}/advance`, {
      method: "POST",
      headers,
      body: JSON.stringify({ to: "2030-01-01T00:00:00Z" }),
    })
    expect(advanced.status).toBe(404)
  })
})
