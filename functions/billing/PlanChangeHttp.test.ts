import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { type BillingUnderTest, caller, freshBillingSchema, startBilling } from "./testing/billingApp.ts"
import { asLine, pendingLinesSql } from "./testing/pendingLines.ts"

// The plan-change routes as main.ts runs billing, on the real Postgres: the preview and the change over HTTP, their
// ownership rule (authz's answers stood in for) and bad input. Subscriptions live on test clocks (written here
// directly, as the engine makes them), so the preview and the change see one instant.

const admin = randomUUID() // billing.subscription.update.any
const alice = randomUUID() // a customer
const bob = randomUUID() // another customer
const grants = { [admin]: ["billing.subscription.update.any", "billing.subscription.read.any"] }

const schema = freshBillingSchema()
let billing: BillingUnderTest
const headers: Record<string, Record<string, string>> = {}

type Line = { description: string; amount: number; quantity: number; periodStart: string; periodEnd: string }
type Body = {
  lines: Array<Line>
  amountPaid: number
  attempts: number
  total: number
  currency: string
  subscription: { id: string; planId: string; currentPeriodStart: string; currentPeriodEnd: string }
  invoiceId: string | null
  status: number
  code: string
  detail?: string
  errors?: Array<{ path: string; message: string }>
}

const call = caller<Body>(() => billing, headers)

const plans: Record<string, string> = {}
const insertPlan = async (code: string, amount: number, extra: { interval?: string; active?: boolean } = {}) => {
  const [row] = await sql(
    `INSERT INTO ${schema}.plans (code, name, amount, currency, interval_unit, active, interval_count)
     VALUES ($1, $2, $3, 'EUR', $4, $5, 1) RETURNING id`,
    [
      `${code.toLowerCase()}-${randomUUID().slice(0, 8)}`,
      code,
      amount,
      extra.interval ?? "month",
      extra.active ?? true,
    ],
  )
  plans[code] = row.id
}

/** A subscription of `customer` on a fresh test clock at `at`, in January 2027. */
const subscribe = async (customer: string, planCode: string, at: string, status = "active") => {
  const [clock] = await sql(
    `INSERT INTO ${schema}.test_clocks (frozen_time, created_by) VALUES ($1, $2) RETURNING id`,
    [at, admin],
  )
  const [row] = await sql(
    `INSERT INTO ${schema}.subscriptions (customer_id, plan_id, status, current_period_start, current_period_end,
       canceled_at, test_clock_id)
     VALUES ($1, $2, $3, '2027-01-01T00:00:00Z', '2027-02-01T00:00:00Z',
       CASE WHEN $3 = 'canceled' THEN '2027-01-01T00:00:00Z'::timestamptz END, $4)
     RETURNING id`,
    [customer, plans[planCode], status, clock.id],
  )
  return { id: row.id as string, clock: clock.id as string }
}

const pending = async (subscriptionId: string): Promise<Array<Line>> =>
  (await sql(pendingLinesSql(schema), [subscriptionId])).map(asLine)

const previewPath = (id: string, planId: string) =>
  `/api/v1/billing/subscriptions/${id}/change-plan/preview?planId=${encodeURIComponent(planId)}`
const changePath = (id: string) => `/api/v1/billing/subscriptions/${id}/change-plan`

beforeAll(async () => {
  billing = await startBilling({ grants, schema })
  for (const user of [admin, alice, bob]) headers[user] = await billing.as(user)
  await insertPlan("Basic", 1000)
  await insertPlan("Pro", 3000)
  await insertPlan("Premium", 5000)
  await insertPlan("Annual", 10_000, { interval: "year" })
  await insertPlan("Retired", 2000, { active: false })
}, 60_000)
afterAll(() => billing?.close())

describe("plan change over HTTP", () => {
  // Each case: the preview's answer is exactly what the change then wrote as pending lines and answered.
  it.each([
    ["upgrade", "Basic", "Pro", "2027-01-16T00:00:00Z", 1032],
    ["downgrade", "Pro", "Basic", "2027-01-16T00:00:00Z", -1032],
    ["last second", "Basic", "Premium", "2027-01-31T23:59:59Z", 0],
  ] as const)("%s: the preview is what the change writes", async (_, from, to, at, total) => {
    const sub = await subscribe(alice, from, at)
    const preview = await call("GET", previewPath(sub.id, plans[to] ?? ""), { as: alice })
    expect(preview.status, JSON.stringify(preview.body)).toBe(200)
    expect(preview.body.total).toBe(total)
    const change = await call("POST", changePath(sub.id), { as: alice, body: { planId: plans[to] } })
    expect(change.status, JSON.stringify(change.body)).toBe(200)
    expect(await pending(sub.id)).toEqual(preview.body.lines)
    expect({ lines: change.body.lines, total: change.body.total, currency: change.body.currency }).toEqual(preview.body)
    expect(change.body.subscription.planId).toBe(plans[to])
  })

  it("same day twice: the second preview credits the first change's plan, and is what the second writes", async () => {
    const sub = await subscribe(alice, "Basic", "2027-01-16T10:00:00Z")
    expect((await call("POST", changePath(sub.id), { as: alice, body: { planId: plans.Pro } })).status).toBe(200)
    await sql(`UPDATE ${schema}.test_clocks SET frozen_time = '2027-01-16T15:00:00Z' WHERE id = $1`, [sub.clock])
    const preview = await call("GET", previewPath(sub.id, plans.Premium ?? ""), { as: alice })
    expect(preview.body.lines.map((line) => line.description)).toEqual([
      "Unused time on Pro after 2027-01-16T15:00:00Z",
      "Remaining time on Premium after 2027-01-16T15:00:00Z",
    ])
    const before = (await pending(sub.id)).length
    expect((await call("POST", changePath(sub.id), { as: alice, body: { planId: plans.Premium } })).status).toBe(200)
    expect((await pending(sub.id)).slice(before)).toEqual(preview.body.lines)
  })

  it("resets the cycle for another interval: the new period from now, invoiced and charged now", async () => {
    const carol = randomUUID()
    headers[carol] = await billing.as(carol)
    const card = await call("PUT", "/api/v1/billing/payment-method", { as: carol, body: { token: "tok_visa" } })
    expect(card.status, JSON.stringify(card.body)).toBe(200)
    const sub = await subscribe(carol, "Basic", "2027-01-16T00:00:00Z")
    const change = await call("POST", changePath(sub.id), { as: carol, body: { planId: plans.Annual } })
    expect(change.status, JSON.stringify(change.body)).toBe(200)
    expect(change.body.subscription).toMatchObject({
      currentPeriodStart: "2027-01-16T00:00:00.000Z",
      currentPeriodEnd: "2028-01-16T00:00:00.000Z",
    })
    const invoice = await call("GET", `/api/v1/billing/invoices/${change.body.invoiceId}`, { as: carol })
    expect(invoice.status).toBe(200)
    expect(invoice.body.lines).toEqual(change.body.lines)
    // Charged by the app's engine right after the change: 10,000 for the year less 516 unused of January.
    expect(invoice.body).toMatchObject({ status: "paid", total: 9484, amountPaid: 9484, attempts: 1 })
  })

  it("lets the customer and update.any change it; anyone else gets a 404, no token a 401", async () => {
    const sub = await subscribe(alice, "Basic", "2027-01-16T00:00:00Z")
    expect((await call("GET", previewPath(sub.id, plans.Pro ?? ""), { as: bob })).status).toBe(404)
    expect((await call("POST", changePath(sub.id), { as: bob, body: { planId: plans.Pro } })).status).toBe(404)
    expect((await call("GET", previewPath(sub.id, plans.Pro ?? ""))).status).toBe(401)
    expect((await call("POST", changePath(sub.id), { body: { planId: plans.Pro } })).status).toBe(401)
    expect((await call("GET", previewPath(sub.id, plans.Pro ?? ""), { as: admin })).status).toBe(200)
    expect((await call("POST", changePath(sub.id), { as: admin, body: { planId: plans.Pro } })).status).toBe(200)
    expect(await pending(sub.id)).toHaveLength(2)
  })

  it("replays a change under its Idempotency-Key; another plan under the key is a 422", async () => {
    const sub = await subscribe(alice, "Basic", "2027-01-16T00:00:00Z")
    const key = { "idempotency-key": randomUUID() }
    const first = await call("POST", changePath(sub.id), { as: alice, body: { planId: plans.Pro }, headers: key })
    const again = await call("POST", changePath(sub.id), { as: alice, body: { planId: plans.Pro }, headers: key })
    expect(first.status).toBe(200)
    expect([again.status, again.body]).toEqual([first.status, first.body])
    expect(await pending(sub.id)).toHaveLength(2)
    const other = await call("POST", changePath(sub.id), { as: alice, body: { planId: plans.Premium }, headers: key })
    expect(other.status).toBe(422)
  })

  it("answers bad input with a 4xx naming it", async () => {
    const sub = await subscribe(alice, "Basic", "2027-01-16T00:00:00Z")
    const canceled = await subscribe(alice, "Basic", "2027-01-16T00:00:00Z", "canceled")
    // planId not a UUID: 400 naming it, in the query and in the body.
    const badQuery = await call("GET", previewPath(sub.id, "pro"), { as: alice })
    expect(badQuery.status).toBe(400)
    expect(badQuery.body.errors?.map((e) => e.path)).toEqual(["query.planId"])
    const badBody = await call("POST", changePath(sub.id), { as: alice, body: { planId: "pro" } })
    expect(badBody.status).toBe(400)
    expect(badBody.body.errors?.map((e) => e.path)).toContain("planId")
    const missing = await call("POST", changePath(sub.id), { as: alice, body: {} })
    expect(missing.status).toBe(400)
    expect(missing.body.errors?.map((e) => e.path)).toContain("planId")
    expect(
      (await call("GET", `/api/v1/billing/subscriptions/nope/change-plan/preview?planId=${plans.Pro}`, { as: alice }))
        .status,
    ).toBe(400)
    // An unknown plan is a 404, an archived one a 409, and so is a canceled subscription.
    const unknown = await call("POST", changePath(sub.id), { as: alice, body: { planId: randomUUID() } })
    expect([unknown.status, unknown.body.detail]).toEqual([404, expect.stringMatching(/no plan/)])
    const retired = await call("POST", changePath(sub.id), { as: alice, body: { planId: plans.Retired } })
    expect([retired.status, retired.body.detail]).toEqual([409, expect.stringMatching(/archived/)])
    const ended = await call("GET", previewPath(canceled.id, plans.Pro ?? ""), { as: alice })
    expect([ended.status, ended.body.detail]).toEqual([409, expect.stringMatching(/canceled/)])
    expect((await call("POST", changePath(canceled.id), { as: alice, body: { planId: plans.Pro } })).status).toBe(409)
    expect((await call("POST", changePath(randomUUID()), { as: alice, body: { planId: plans.Pro } })).status).toBe(404)
    // Malformed requests: a repeated planId, a body that is not an object or not JSON, an unknown field: 400s.
    const twice = await call("GET", `${previewPath(sub.id, plans.Pro ?? "")}&planId=${plans.Basic}`, { as: alice })
    expect(twice.status).toBe(400)
    for (const body of [[], "x", null, { planId: 1 }, { planId: plans.Pro, extra: true }]) {
      const res = await call("POST", changePath(sub.id), { as: alice, body })
      expect(res.status, JSON.stringify(body)).toBe(400)
    }
    const notJson = await fetch(`${billing.url}${changePath(sub.id)}`, {
      method: "POST",
      headers: { ...headers[alice], "content-type": "application/json" },
      body: "{",
    })
    expect(notJson.status).toBe(400)
    expect(await pending(sub.id)).toEqual([])
  })
})
