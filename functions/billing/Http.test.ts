import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { type BillingUnderTest, caller, freshBillingSchema, startBilling } from "./testing/billingApp.ts"

// Billing as main.ts runs it on the real Postgres: the routes of the Billing table, their permissions and ownership
// rules (authz's answers stood in for), idempotent creation and bad input.

const admin = randomUUID() // creates and archives plans, reads and acts on everyone's
const alice = randomUUID() // a customer
const bob = randomUUID() // another customer
const clerk = randomUUID() // may create plans, not change them
const auditor = randomUUID() // reads everyone's subscriptions and invoices, acts on none
const grants = {
  [admin]: [
    "billing.plan.create",
    "billing.plan.update",
    "billing.subscription.read.any",
    "billing.subscription.update.any",
    "billing.invoice.read.any",
    "billing.invoice.update.any",
    "billing.testclock.manage",
  ],
  [clerk]: ["billing.plan.create"],
  [auditor]: ["billing.subscription.read.any", "billing.invoice.read.any"],
}

const schema = freshBillingSchema()
let billing: BillingUnderTest
const headers: Record<string, Record<string, string>> = {}

beforeAll(async () => {
  billing = await startBilling({ grants, schema })
  for (const user of [admin, alice, bob, clerk, auditor]) headers[user] = await billing.as(user)
}, 60_000)
afterAll(() => billing?.close())

type Plan = {
  id: string
  code: string
  name: string
  description: string
  amount: number
  currency: string
  interval: string
  intervalCount: number
  trialDays: number
  active: boolean
  createdAt: string
}
type Subscription = {
  id: string
  customerId: string
  planId: string
  status: string
  currentPeriodStart: string
  currentPeriodEnd: string
  trialEnd: string | null
  cancelAtPeriodEnd: boolean
  canceledAt: string | null
  createdAt: string
}
type Invoice = {
  id: string
  number: string | null
  subscriptionId: string
  customerId: string
  status: string
  currency: string
  lines: Array<{ description: string; amount: number; quantity: number; periodStart: string; periodEnd: string }>
  subtotal: number
  total: number
  amountPaid: number
  amountDue: number
  periodStart: string
  periodEnd: string
  attempts: number
  nextAttemptAt: string | null
  paidAt: string | null
  createdAt: string
}
type Problem = {
  status: number
  code: string
  detail?: string
  declineCode?: string
  errors?: Array<{ path: string; message: string }>
}
type Page<A> = { items: Array<A>; nextCursor: string | null }
type Body = Plan & Subscription & Invoice & Problem & Page<any> & { provider: string; brand: string; last4: string }

const call = caller<Body>(() => billing, headers)

const code = (prefix = "plan") => `${prefix}-${randomUUID().slice(0, 8)}`
const newPlan = (extra: Record<string, unknown> = {}) => ({
  code: code(),
  name: "Pro",
  amount: 1999,
  currency: "EUR",
  interval: "month",
  ...extra,
})
const createPlan = async (extra: Record<string, unknown> = {}) => {
  const res = await call("POST", "/api/v1/billing/plans", { as: admin, body: newPlan(extra) })
  expect(res.status, JSON.stringify(res.body)).toBe(201)
  return res.body as Plan
}
const eventsOf = async (subject: string) =>
  (await sql(`SELECT event FROM ${schema}.outbox WHERE key = $1 ORDER BY seq`, [subject])).map(
    (row) => row.event as { type: string; data: Record<string, unknown> },
  )
const allActive = async () => {
  const plans: Array<Plan> = []
  let cursor: string | null = null
  do {
    const res = await call("GET", `/api/v1/billing/plans?limit=100${cursor ? `&cursor=${cursor}` : ""}`)
    expect(res.status).toBe(200)
    plans.push(...res.body.items)
    cursor = res.body.nextCursor
  } while (cursor !== null)
  return plans
}

describe("plans", () => {
  it("creates a plan (201, defaults, an event) that anyone then lists", async () => {
    const body = newPlan({
      description: "For teams",
      intervalCount: 3,
      trialDays: 14,
      amount: 120_000,
      currency: "JPY",
    })
    const res = await call("POST", "/api/v1/billing/plans", { as: admin, body })
    expect(res.status).toBe(201)
    const plan = res.body as Plan
    expect(plan).toMatchObject({
      code: body.code,
      name: "Pro",
      description: "For teams",
      amount: 120_000,
      currency: "JPY",
      interval: "month",
      intervalCount: 3,
      trialDays: 14,
      active: true,
    })
    expect(plan.createdAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    const defaults = await createPlan({ interval: "year" })
    expect(defaults).toMatchObject({ description: "", intervalCount: 1, trialDays: 0 })
    const events = await eventsOf(plan.id)
    expect(events.map((e) => e.type)).toEqual(["billing.plan.created"])
    expect(events[0]!.data).toMatchObject({ planId: plan.id, amount: 120_000, currency: "JPY", actor: admin })
    // Public: no token needed.
    const listed = await allActive()
    expect(listed.map((p) => p.id)).toEqual(expect.arrayContaining([plan.id, defaults.id]))
  })

  it("keeps a code unique: a second plan with it is 409", async () => {
    const plan = await createPlan()
    const again = await call("POST", "/api/v1/billing/plans", { as: admin, body: newPlan({ code: plan.code }) })
    expect(again.status).toBe(409)
    expect(again.body.code).toBe("conflict")
    const rows = await sql(`SELECT count(*)::int AS n FROM ${schema}.plans WHERE code = $1`, [plan.code])
    expect(rows[0].n).toBe(1)
  })

  it("answers a repeated Idempotency-Key with the first plan, another body under it with 422", async () => {
    const key = { "idempotency-key": randomUUID() }
    const body = newPlan()
    const first = await call("POST", "/api/v1/billing/plans", { as: admin, body, headers: key })
    expect(first.status).toBe(201)
    const again = await call("POST", "/api/v1/billing/plans", { as: admin, body, headers: key })
    expect(again.status).toBe(201)
    expect(again.body).toEqual(first.body)
    const other = await call("POST", "/api/v1/billing/plans", { as: admin, body: newPlan(), headers: key })
    expect(other.status).toBe(422)
    expect(other.body.code).toBe("idempotency_key_reused")
    // A key is the caller's own: the clerk's request under the admin's key is a request of its own (here a 409).
    const clerks = await call("POST", "/api/v1/billing/plans", { as: clerk, body, headers: key })
    expect(clerks.status).toBe(409)
  })

  it("lists active plans in pages, oldest first, with a cursor that continues where the page ended", async () => {
    const created = [await createPlan(), await createPlan(), await createPlan()]
    const ids: Array<string> = []
    let cursor: string | null = null
    do {
      const res = await call("GET", `/api/v1/billing/plans?limit=2${cursor ? `&cursor=${cursor}` : ""}`)
      expect(res.status).toBe(200)
      expect(res.body.items.length).toBeLessThanOrEqual(2)
      ids.push(...res.body.items.map((p) => p.id))
      cursor = res.body.nextCursor
    } while (cursor !== null)
    expect(new Set(ids).size).toBe(ids.length)
    const positions = created.map((p) => ids.indexOf(p.id))
    expect(positions.every((p) => p >= 0)).toBe(true)
    expect([...positions].sort((a, b) => a - b)).toEqual(positions)
  })

  it("changes name, description and active only; an archived plan leaves the public list", async () => {
    const plan = await createPlan()
    const res = await call("PATCH", `/api/v1/billing/plans/${plan.id}`, {
      as: admin,
      body: { name: "Pro (legacy)", description: "Old price", active: false },
    })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ ...plan, name: "Pro (legacy)", description: "Old price", active: false })
    expect((await allActive()).map((p) => p.id)).not.toContain(plan.id)
    const updated = (await eventsOf(plan.id)).filter((e) => e.type === "billing.plan.updated")
    expect(updated).toHaveLength(1)
    expect(updated[0]!.data.changes).toEqual(["name", "description", "active"])
    // Nothing to change: no event.
    const same = await call("PATCH", `/api/v1/billing/plans/${plan.id}`, { as: admin, body: { active: false } })
    expect(same.status).toBe(200)
    expect((await eventsOf(plan.id)).filter((e) => e.type === "billing.plan.updated")).toHaveLength(1)
    // A price never changes.
    for (const field of ["amount", "currency", "interval", "intervalCount", "trialDays", "code"]) {
      const price = await call("PATCH", `/api/v1/billing/plans/${plan.id}`, { as: admin, body: { [field]: 1 } })
      expect(price.status, field).toBe(400)
      expect(price.body.errors?.map((e) => e.path)).toContain(field)
    }
    const restored = await call("PATCH", `/api/v1/billing/plans/${plan.id}`, { as: admin, body: { active: true } })
    expect(restored.body).toMatchObject({ active: true, amount: plan.amount })
  })

  it("answers 404 for an unknown plan, 401 without a token and 403 without the permission", async () => {
    const missing = await call("PATCH", `/api/v1/billing/plans/${randomUUID()}`, { as: admin, body: { name: "x" } })
    expect(missing.status).toBe(404)
    expect(missing.body.code).toBe("not_found")
    const anonymous = await call("POST", "/api/v1/billing/plans", { body: newPlan() })
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get("www-authenticate")).toBe("Bearer")
    expect((await call("POST", "/api/v1/billing/plans", { as: alice, body: newPlan() })).status).toBe(403)
    const plan = await createPlan()
    const clerks = await call("PATCH", `/api/v1/billing/plans/${plan.id}`, { as: clerk, body: { name: "x" } })
    expect(clerks.status).toBe(403)
    expect(clerks.body.code).toBe("forbidden")
  })
})

describe("payment method", () => {
  it("saves the caller's method from a token (200, what to show of it) and replaces it on the next PUT", async () => {
    const saved = await call("PUT", "/api/v1/billing/payment-method", { as: alice, body: { token: "tok_visa" } })
    expect(saved.status, JSON.stringify(saved.body)).toBe(200)
    expect(saved.body).toEqual({ provider: "test", brand: "visa", last4: "4242" })
    const again = await call("PUT", "/api/v1/billing/payment-method", {
      as: alice,
      body: { token: "tok_insufficient_funds" },
    })
    expect(again.body).toEqual({ provider: "test", brand: "visa", last4: "9995" })
    const rows = await sql(
      `SELECT provider, payment_method_ref, last4 FROM ${schema}.payment_methods WHERE customer_id = $1`,
      [alice],
    )
    expect(rows).toEqual([{ provider: "test", payment_method_ref: "pm_test_tok_insufficient_funds", last4: "9995" }])
  })

  it("refuses a token the provider does not know (400 naming token), no token, and an anonymous caller", async () => {
    const unknown = await call("PUT", "/api/v1/billing/payment-method", { as: bob, body: { token: "tok_nonsense" } })
    expect(unknown.status).toBe(400)
    expect(unknown.body.errors?.map((e) => e.path)).toEqual(["token"])
    for (const body of [{}, { token: "" }, { token: "has space" }, { token: "x".repeat(256) }, { token: 4242 }]) {
      const bad = await call("PUT", "/api/v1/billing/payment-method", { as: bob, body })
      expect(bad.status, JSON.stringify(body)).toBe(400)
      expect(bad.body.errors?.map((e) => e.path)).toContain("token")
    }
    const extra = await call("PUT", "/api/v1/billing/payment-method", {
      as: bob,
      body: { token: "tok_visa", cvc: "1" },
    })
    expect(extra.status).toBe(400)
    expect(extra.body.errors?.map((e) => e.path)).toContain("cvc")
    expect((await sql(`SELECT 1 FROM ${schema}.payment_methods WHERE customer_id = $1`, [bob])).length).toBe(0)
    expect((await call("PUT", "/api/v1/billing/payment-method", { body: { token: "tok_visa" } })).status).toBe(401)
  })
})

// Subscriptions and invoices as the engine writes them (Lifecycle.ts), written here directly: the reads and their
// ownership rules are what this part tests.
const insertSubscription = async (customerId: string, planId: string, status = "active") => {
  const [row] = await sql(
    `INSERT INTO ${schema}.subscriptions (customer_id, plan_id, status, current_period_start, current_period_end,
       canceled_at)
     VALUES ($1, $2, $3, now(), now() + interval '1 month', CASE WHEN $3 = 'canceled' THEN now() END) RETURNING id`,
    [customerId, planId, status],
  )
  return row.id as string
}
const insertInvoice = async (subscriptionId: string, customerId: string, status = "open") => {
  const [row] = await sql(
    `INSERT INTO ${schema}.invoices (number, subscription_id, customer_id, status, reason, currency, lines, subtotal,
       total, amount_paid, amount_due, period_start, period_end, paid_at)
     VALUES (CASE WHEN $3 <> 'draft' THEN 'T-' || gen_random_uuid() END, $1, $2, $3, 'subscription_create', 'EUR',
       $4, 1999, 1999, CASE WHEN $3 = 'paid' THEN 1999 ELSE 0 END, CASE WHEN $3 = 'paid' THEN 0 ELSE 1999 END,
       now() + make_interval(secs => random() * 1e6), now() + interval '10 years',
       CASE WHEN $3 = 'paid' THEN now() END)
     RETURNING id`,
    [
      subscriptionId,
      customerId,
      status,
      JSON.stringify([
        {
          description: "Pro",
          amount: 1999,
          quantity: 1,
          periodStart: "2026-01-01T00:00:00.000Z",
          periodEnd: "2026-02-01T00:00:00.000Z",
        },
      ]),
    ],
  )
  return row.id as string
}

describe("reading subscriptions and invoices", () => {
  let plan: Plan
  const carol = randomUUID() // a customer of her own, for the filters
  const owned: { sub: string; inv: Array<string>; bobSub: string; bobInv: string } = {
    sub: "",
    inv: [],
    bobSub: "",
    bobInv: "",
  }
  beforeAll(async () => {
    plan = await createPlan()
    owned.sub = await insertSubscription(carol, plan.id)
    owned.inv = [await insertInvoice(owned.sub, carol, "paid"), await insertInvoice(owned.sub, carol, "open")]
    owned.bobSub = await insertSubscription(bob, plan.id, "past_due")
    owned.bobInv = await insertInvoice(owned.bobSub, bob, "open")
    headers[carol] = await billing.as(carol)
  })

  it("lists the caller's own, newest first, with ?status=", async () => {
    const subs = await call("GET", "/api/v1/billing/subscriptions/me", { as: carol })
    expect(subs.status, JSON.stringify(subs.body)).toBe(200)
    expect(subs.body.items.map((s: Subscription) => s.id)).toEqual([owned.sub])
    expect(subs.body.items[0]).toMatchObject({ customerId: carol, planId: plan.id, status: "active", trialEnd: null })
    expect(subs.body.nextCursor).toBeNull()
    const invoices = await call("GET", "/api/v1/billing/invoices/me", { as: carol })
    expect(invoices.body.items.map((i: Invoice) => i.id)).toEqual([...owned.inv].reverse())
    expect(invoices.body.items[1]).toMatchObject({ status: "paid", total: 1999, amountPaid: 1999, amountDue: 0 })
    const open = await call("GET", "/api/v1/billing/invoices/me?status=open", { as: carol })
    expect(open.body.items.map((i: Invoice) => i.id)).toEqual([owned.inv[1]])
    expect((await call("GET", "/api/v1/billing/subscriptions/me?status=canceled", { as: carol })).body.items).toEqual(
      [],
    )
    // Someone with none has an empty list, not everyone's.
    expect((await call("GET", "/api/v1/billing/invoices/me", { as: clerk })).body).toEqual({
      items: [],
      nextCursor: null,
    })
  })

  it("reads one's own by id; another's is 404 (not 403) unless the caller may read any", async () => {
    const own = await call("GET", `/api/v1/billing/invoices/${owned.inv[0]}`, { as: carol })
    expect(own.status).toBe(200)
    expect(own.body).toMatchObject({ id: owned.inv[0], customerId: carol, subscriptionId: owned.sub })
    expect(own.body.lines).toHaveLength(1)
    expect((await call("GET", `/api/v1/billing/subscriptions/${owned.sub}`, { as: carol })).status).toBe(200)
    for (const path of [`/api/v1/billing/subscriptions/${owned.bobSub}`, `/api/v1/billing/invoices/${owned.bobInv}`]) {
      const theirs = await call("GET", path, { as: carol })
      expect(theirs.status, path).toBe(404)
      expect(theirs.body.code).toBe("not_found")
      const missing = await call("GET", path.replace(/[^/]+$/, randomUUID()), { as: carol })
      expect(missing.body).toEqual({ ...theirs.body, detail: missing.body.detail })
      expect((await call("GET", path, { as: admin })).status, path).toBe(200)
      expect((await call("GET", path)).status, path).toBe(401)
    }
  })

  it("lists everyone's with the .read.any permission, filtered by ?customerId=&status=, in pages", async () => {
    const bobs = await call("GET", `/api/v1/billing/subscriptions?customerId=${bob}`, { as: admin })
    expect(bobs.status).toBe(200)
    expect(bobs.body.items.map((s: Subscription) => s.id)).toEqual([owned.bobSub])
    const pastDue = await call("GET", "/api/v1/billing/subscriptions?status=past_due", { as: admin })
    expect(pastDue.body.items.map((s: Subscription) => s.id)).toContain(owned.bobSub)
    expect(pastDue.body.items.every((s: Subscription) => s.status === "past_due")).toBe(true)
    const carols = await call("GET", `/api/v1/billing/invoices?customerId=${carol}&status=open`, { as: admin })
    expect(carols.body.items.map((i: Invoice) => i.id)).toEqual([owned.inv[1]])
    // Pages of one: every invoice once, newest first.
    const seen: Array<string> = []
    let cursor: string | null = null
    do {
      const page = await call("GET", `/api/v1/billing/invoices?limit=1${cursor ? `&cursor=${cursor}` : ""}`, {
        as: admin,
      })
      expect(page.status).toBe(200)
      seen.push(...page.body.items.map((i: Invoice) => i.id))
      cursor = page.body.nextCursor
    } while (cursor !== null)
    expect(seen).toEqual(expect.arrayContaining([...owned.inv, owned.bobInv]))
    expect(new Set(seen).size).toBe(seen.length)
    const times = (await sql(`SELECT id FROM ${schema}.invoices ORDER BY created_at DESC, id DESC`)).map((r) => r.id)
    expect(seen).toEqual(times)
    expect((await call("GET", "/api/v1/billing/invoices", { as: carol })).status).toBe(403)
    expect((await call("GET", "/api/v1/billing/subscriptions", { as: carol })).status).toBe(403)
    expect((await call("GET", "/api/v1/billing/subscriptions")).status).toBe(401)
  })

  it("refuses bad ids, filters and cursors with 400 naming them", async () => {
    const cases: Array<[string, string]> = [
      ["/api/v1/billing/subscriptions/not-a-uuid", "params.id"],
      ["/api/v1/billing/invoices/1", "params.id"],
      ["/api/v1/billing/subscriptions?customerId=bob", "query.customerId"],
      ["/api/v1/billing/subscriptions?status=unpaid", "query.status"],
      ["/api/v1/billing/invoices?status=overdue", "query.status"],
      ["/api/v1/billing/invoices/me?status=late", "query.status"],
      ["/api/v1/billing/invoices/me?cursor=xyz", "query.cursor"],
      ["/api/v1/billing/subscriptions/me?limit=1000", "query.limit"],
      [`/api/v1/billing/invoices/me?customerId=${bob}`, "customerId"],
    ]
    for (const [path, field] of cases) {
      const res = await call("GET", path, { as: admin })
      expect(res.status, `${path} ${JSON.stringify(res.body)}`).toBe(400)
      expect(res.body.errors?.map((e) => e.path).join(" "), path).toContain(field)
    }
  })
})

describe("subscribing, paying, voiding and canceling (through the engine)", () => {
  const newCustomer = async (token?: string) => {
    const id = randomUUID()
    headers[id] = await billing.as(id)
    if (token !== undefined) {
      const saved = await call("PUT", "/api/v1/billing/payment-method", { as: id, body: { token } })
      expect(saved.status).toBe(200)
    }
    return id
  }
  const subscribe = async (as: string, body: Record<string, unknown>, extra: Record<string, string> = {}) =>
    call("POST", "/api/v1/billing/subscriptions", { as, body, headers: extra })
  const invoicesOf = async (as: string) =>
    (await call("GET", "/api/v1/billing/invoices/me", { as })).body.items as Array<Invoice>
  const attemptsOf = async (invoiceId: string) =>
    (await sql(`SELECT count(*)::int AS n FROM ${schema}.payment_attempts WHERE invoice_id = $1`, [invoiceId]))[0].n

  let plan: Plan
  beforeAll(async () => {
    plan = await createPlan({ amount: 2500, currency: "EUR", interval: "month" })
  })

  it("subscribes with a saved method: 201 active, Location, the first invoice numbered and paid", async () => {
    const customer = await newCustomer("tok_visa")
    const res = await subscribe(customer, { planId: plan.id })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    const subscription = res.body as Subscription
    expect(res.headers.get("location")).toBe(`/api/v1/billing/subscriptions/${subscription.id}`)
    expect(subscription).toMatchObject({ customerId: customer, planId: plan.id, status: "active", trialEnd: null })
    const [invoice, ...others] = await invoicesOf(customer)
    expect(others).toEqual([])
    expect(invoice).toMatchObject({
      subscriptionId: subscription.id,
      status: "paid",
      currency: "EUR",
      total: 2500,
      amountPaid: 2500,
      amountDue: 0,
      attempts: 1,
      periodStart: subscription.currentPeriodStart,
      periodEnd: subscription.currentPeriodEnd,
    })
    expect(invoice!.number).toMatch(/^\d{4}-\d{6,}$/)
    const read = await call("GET", `/api/v1/billing/subscriptions/${subscription.id}`, { as: customer })
    expect(read.body).toEqual(subscription)
  })

  it("answers a repeated Idempotency-Key with the first subscription (one made, one charge), another body with 422", async () => {
    const customer = await newCustomer("tok_visa")
    const key = { "idempotency-key": randomUUID() }
    const first = await subscribe(customer, { planId: plan.id }, key)
    expect(first.status).toBe(201)
    const again = await subscribe(customer, { planId: plan.id }, key)
    expect(again.status).toBe(201)
    expect(again.body).toEqual(first.body)
    const rows = await sql(`SELECT count(*)::int AS n FROM ${schema}.subscriptions WHERE customer_id = $1`, [customer])
    expect(rows[0].n).toBe(1)
    const charges = await sql(
      `SELECT count(*)::int AS n FROM ${schema}.test_provider_charges WHERE customer_ref = $1`,
      [`cus_test_${customer}`],
    )
    expect(charges[0].n).toBe(1)
    const other = await subscribe(customer, { planId: (await createPlan()).id }, key)
    expect(other.status).toBe(422)
    expect(other.body.code).toBe("idempotency_key_reused")
    // A refused request leaves its key free: the same key, once the refusal is mended, works.
    const late = await newCustomer()
    const lateKey = { "idempotency-key": randomUUID() }
    expect((await subscribe(late, { planId: plan.id }, lateKey)).status).toBe(409)
    await call("PUT", "/api/v1/billing/payment-method", { as: late, body: { token: "tok_visa" } })
    expect((await subscribe(late, { planId: plan.id }, lateKey)).status).toBe(201)
  })

  it("answers 409 while a request with the same key is still running (never a second subscription)", async () => {
    const customer = await newCustomer("tok_visa")
    const key = { "idempotency-key": randomUUID() }
    const results = await Promise.all([1, 2, 3].map(() => subscribe(customer, { planId: plan.id }, key)))
    const statuses = results.map((r) => r.status).sort()
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(1)
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true)
    expect(new Set(results.filter((r) => r.status === 201).map((r) => r.body.id)).size).toBe(1)
    const rows = await sql(`SELECT count(*)::int AS n FROM ${schema}.subscriptions WHERE customer_id = $1`, [customer])
    expect(rows[0].n).toBe(1)
  })

  it("starts a trial without an invoice, and refuses what cannot be subscribed to", async () => {
    const customer = await newCustomer()
    const trial = await createPlan({ trialDays: 14 })
    const res = await subscribe(customer, { planId: trial.id })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    expect(res.body.status).toBe("trialing")
    expect(Date.parse(res.body.trialEnd!) - Date.parse(res.body.currentPeriodStart)).toBe(14 * 86_400_000)
    expect(await invoicesOf(customer)).toEqual([])
    // No trial and no saved method: 409.
    const noMethod = await subscribe(customer, { planId: plan.id })
    expect(noMethod.status).toBe(409)
    expect(noMethod.body.detail).toContain("payment method")
    const archived = await createPlan()
    await call("PATCH", `/api/v1/billing/plans/${archived.id}`, { as: admin, body: { active: false } })
    expect((await subscribe(customer, { planId: archived.id })).status).toBe(409)
    expect((await subscribe(customer, { planId: randomUUID() })).status).toBe(404)
    for (const body of [{}, { planId: "pro" }, { planId: plan.id, customerId: randomUUID() }]) {
      const bad = await subscribe(customer, body)
      expect(bad.status, JSON.stringify(body)).toBe(400)
    }
    expect((await call("POST", "/api/v1/billing/subscriptions", { body: { planId: plan.id } })).status).toBe(401)
  })

  it("puts a subscription on a test clock only for billing.testclock.manage, and only on a clock that exists", async () => {
    const [clock] = await sql(
      `INSERT INTO ${schema}.test_clocks (frozen_time, created_by) VALUES ('2030-01-15T10:00:00Z', $1) RETURNING id`,
      [admin],
    )
    const customer = await newCustomer("tok_visa")
    const refused = await subscribe(customer, { planId: plan.id, testClockId: clock.id })
    expect(refused.status).toBe(403)
    await call("PUT", "/api/v1/billing/payment-method", { as: admin, body: { token: "tok_visa" } })
    const onClock = await subscribe(admin, { planId: plan.id, testClockId: clock.id })
    expect(onClock.status, JSON.stringify(onClock.body)).toBe(201)
    expect(onClock.body.currentPeriodStart).toBe("2030-01-15T10:00:00.000Z")
    expect(onClock.body.currentPeriodEnd).toBe("2030-02-15T10:00:00.000Z")
    expect((await subscribe(admin, { planId: plan.id, testClockId: randomUUID() })).status).toBe(404)
  })

  it("a declined first payment leaves the subscription incomplete and the invoice open; /pay with a good method restores active", async () => {
    const customer = await newCustomer("tok_declined")
    const res = await subscribe(customer, { planId: plan.id })
    expect(res.status).toBe(201)
    expect(res.body.status).toBe("incomplete")
    const [invoice] = await invoicesOf(customer)
    expect(invoice).toMatchObject({ status: "open", attempts: 1, amountDue: 2500, amountPaid: 0 })
    // Another attempt now, still declined: 200 with the invoice as it stands.
    const declined = await call("POST", `/api/v1/billing/invoices/${invoice!.id}/pay`, { as: customer })
    expect(declined.status, JSON.stringify(declined.body)).toBe(200)
    expect(declined.body).toMatchObject({ status: "open", attempts: 2 })
    await call("PUT", "/api/v1/billing/payment-method", { as: customer, body: { token: "tok_visa" } })
    const key = { "idempotency-key": randomUUID() }
    const paid = await call("POST", `/api/v1/billing/invoices/${invoice!.id}/pay`, { as: customer, headers: key })
    expect(paid.status).toBe(200)
    expect(paid.body).toMatchObject({ status: "paid", attempts: 3, amountPaid: 2500, amountDue: 0 })
    expect(paid.body.paidAt).not.toBeNull()
    // The same key: the same answer, no fourth attempt.
    const replay = await call("POST", `/api/v1/billing/invoices/${invoice!.id}/pay`, { as: customer, headers: key })
    expect(replay.body).toEqual(paid.body)
    expect(await attemptsOf(invoice!.id)).toBe(3)
    const subscription = await call("GET", `/api/v1/billing/subscriptions/${res.body.id}`, { as: customer })
    expect(subscription.body.status).toBe("active")
    // Paid already: a conflict, not another charge.
    const again = await call("POST", `/api/v1/billing/invoices/${invoice!.id}/pay`, { as: customer })
    expect(again.status).toBe(409)
    expect(await attemptsOf(invoice!.id)).toBe(3)
  })

  it("pays and voids by the rules: own or .update.any to pay, .update.any to void; others' are 404, readers' 403", async () => {
    const customer = await newCustomer("tok_insufficient_funds")
    await subscribe(customer, { planId: plan.id })
    const [invoice] = await invoicesOf(customer)
    const pay = `/api/v1/billing/invoices/${invoice!.id}/pay`
    const voidIt = `/api/v1/billing/invoices/${invoice!.id}/void`
    expect((await call("POST", pay, { as: bob })).status).toBe(404)
    expect((await call("POST", pay, { as: auditor })).status).toBe(403)
    expect((await call("POST", pay)).status).toBe(401)
    expect((await call("POST", voidIt, { as: customer })).status).toBe(403)
    expect((await call("POST", voidIt, { as: auditor })).status).toBe(403)
    expect(await attemptsOf(invoice!.id)).toBe(1)
    const byAdmin = await call("POST", pay, { as: admin })
    expect(byAdmin.status).toBe(200)
    expect(byAdmin.body).toMatchObject({ status: "open", attempts: 2 })
    const voided = await call("POST", voidIt, { as: admin })
    expect(voided.status, JSON.stringify(voided.body)).toBe(200)
    expect(voided.body).toMatchObject({ id: invoice!.id, status: "void" })
    // Void is open → void only; a void invoice is neither paid nor voided again.
    expect((await call("POST", voidIt, { as: admin })).status).toBe(409)
    expect((await call("POST", pay, { as: customer })).status).toBe(409)
    expect((await call("POST", `/api/v1/billing/invoices/${randomUUID()}/void`, { as: admin })).status).toBe(404)
    expect((await call("POST", "/api/v1/billing/invoices/nope/pay", { as: admin })).status).toBe(400)
  })

  it("cancels at the period's end by default or now; another's is 404, a reader's 403, twice is 409", async () => {
    const customer = await newCustomer("tok_visa")
    const created = await subscribe(customer, { planId: plan.id })
    const cancel = `/api/v1/billing/subscriptions/${created.body.id}/cancel`
    expect((await call("POST", cancel, { as: bob, body: {} })).status).toBe(404)
    expect((await call("POST", cancel, { as: auditor, body: {} })).status).toBe(403)
    const atEnd = await call("POST", cancel, { as: customer })
    expect(atEnd.status, JSON.stringify(atEnd.body)).toBe(200)
    expect(atEnd.body).toMatchObject({ status: "active", cancelAtPeriodEnd: true, canceledAt: null })
    const now = await call("POST", cancel, { as: admin, body: { atPeriodEnd: false } })
    expect(now.status).toBe(200)
    expect(now.body.status).toBe("canceled")
    expect(now.body.canceledAt).not.toBeNull()
    expect((await call("POST", cancel, { as: customer, body: { atPeriodEnd: false } })).status).toBe(409)
    expect((await call("POST", cancel, { as: customer, body: { atPeriodEnd: "no" } })).status).toBe(400)
  })

  it("publishes its events with the subscription's sequence", async () => {
    const customer = await newCustomer("tok_visa")
    const created = await subscribe(customer, { planId: plan.id })
    const events = (
      await sql(`SELECT event FROM ${schema}.outbox WHERE event->'data'->>'subscriptionId' = $1 ORDER BY seq`, [
        created.body.id,
      ])
    ).map((row) => row.event as { type: string; data: { sequence: number } })
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining(["billing.subscription.created", "billing.invoice.finalized", "billing.invoice.paid"]),
    )
    const sequences = events.map((e) => e.data.sequence)
    expect([...sequences].sort((a, b) => a - b)).toEqual(sequences)
    expect(new Set(sequences).size).toBe(sequences.length)
  })
})

describe("with BILLING_TEST_CLOCKS=false", () => {
  it("refuses a subscription on a test clock with 404, even to who manages clocks", async () => {
    const off = await startBilling({ grants, schema, env: { BILLING_TEST_CLOCKS: "false" } })
    try {
      const [clock] = await sql(
        `INSERT INTO ${schema}.test_clocks (frozen_time, created_by) VALUES (now(), $1) RETURNING id`,
        [admin],
      )
      const res = await fetch(`${off.url}/api/v1/billing/subscriptions`, {
        method: "POST",
        headers: { ...(await off.as(admin)), "content-type": "application/json" },
        body: JSON.stringify({ planId: (await createPlan()).id, testClockId: clock.id }),
      })
      expect(res.status).toBe(404)
      expect(((await res.json()) as Problem).detail).toContain("test clocks are off")
    } finally {
      await off.close()
    }
  })
})

describe("bad input is a 400 naming the field, never a 5xx", () => {
  it.each([
    ["a negative amount", { amount: -1 }, "amount"],
    ["a fractional amount", { amount: 19.99 }, "amount"],
    ["an amount as a string", { amount: "1999" }, "amount"],
    ["an unknown currency", { currency: "XYZ" }, "currency"],
    ["a currency in lower case", { currency: "eur" }, "currency"],
    ["an unknown interval", { interval: "fortnight" }, "interval"],
    ["intervalCount 0", { intervalCount: 0 }, "intervalCount"],
    ["intervalCount 366", { intervalCount: 366 }, "intervalCount"],
    ["a fractional intervalCount", { intervalCount: 1.5 }, "intervalCount"],
    ["negative trialDays", { trialDays: -1 }, "trialDays"],
    ["trialDays 731", { trialDays: 731 }, "trialDays"],
    ["a code with capitals", { code: "Pro Monthly" }, "code"],
    ["a code over 64 characters", { code: "x".repeat(65) }, "code"],
    ["an empty name", { name: "" }, "name"],
    ["a blank name", { name: "  " }, "name"],
    ["a name over 200 characters", { name: "x".repeat(201) }, "name"],
    ["a control character in the description", { description: "a\u0007b" }, "description"],
    ["a description over 2,000 characters", { description: "x".repeat(2001) }, "description"],
    ["an unknown field", { active: false }, "active"],
    ["another unknown field", { price: 5 }, "price"],
  ])("creating a plan with %s → 400 naming %s", async (_case, extra, field) => {
    const res = await call("POST", "/api/v1/billing/plans", { as: admin, body: newPlan(extra) })
    expect(res.status, JSON.stringify(res.body)).toBe(400)
    expect(res.body.code).toBe("validation_failed")
    expect(res.body.errors?.map((e) => e.path)).toContain(field)
  })

  it("refuses amounts beyond 2^53 - 1 and missing fields, naming them", async () => {
    // JSON numbers past 2^53 - 1 cannot be held exactly: 9007199254740993 reads as ...992, still beyond the bound.
    for (const amount of ["9007199254740992", "9007199254740993", "1e300"]) {
      const raw = JSON.stringify(newPlan({ amount: 0 })).replace('"amount":0', `"amount":${amount}`)
      const res = await call("POST", "/api/v1/billing/plans", { as: admin, raw })
      expect(res.status, amount).toBe(400)
      expect(res.body.errors?.map((e) => e.path)).toContain("amount")
    }
    const largest = await call("POST", "/api/v1/billing/plans", {
      as: admin,
      body: newPlan({ amount: Number.MAX_SAFE_INTEGER }),
    })
    expect(largest.status).toBe(201)
    expect(largest.body.amount).toBe(Number.MAX_SAFE_INTEGER)
    const missing = await call("POST", "/api/v1/billing/plans", { as: admin, body: { code: code() } })
    expect(missing.status).toBe(400)
    expect(missing.body.errors?.map((e) => e.path)).toEqual(
      expect.arrayContaining(["name", "amount", "currency", "interval"]),
    )
  })

  it("refuses bad ids, cursors, limits and Idempotency-Keys with 400", async () => {
    const cases: Array<[string, string, { body?: unknown; headers?: Record<string, string> }, string]> = [
      ["PATCH", "/api/v1/billing/plans/not-a-uuid", { body: {} }, "params.id"],
      ["GET", "/api/v1/billing/plans?cursor=garbage", {}, "query.cursor"],
      [
        "GET",
        `/api/v1/billing/plans?cursor=${Buffer.from(JSON.stringify({ at: "x'; DROP TABLE plans", id: "y" })).toString("base64url")}`,
        {},
        "query.cursor",
      ],
      ["GET", "/api/v1/billing/plans?limit=0", {}, "query.limit"],
      ["GET", "/api/v1/billing/plans?limit=101", {}, "query.limit"],
      ["POST", "/api/v1/billing/plans", { body: newPlan(), headers: { "idempotency-key": "a b" } }, "Idempotency-Key"],
    ]
    for (const [method, path, options, field] of cases) {
      const res = await call(method, path, { as: admin, ...options })
      expect(res.status, `${method} ${path} ${JSON.stringify(res.body)}`).toBe(400)
      expect(
        res.body.errors?.map((e) => e.path),
        `${method} ${path}`,
      ).toContain(field)
    }
  })
})

describe("contract", () => {
  it("publishes billing's routes in its OpenAPI document, the public list without security", async () => {
    const document = (await (await fetch(`${billing.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { security?: unknown }>>
    }
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining([
        "/api/v1/billing/plans",
        "/api/v1/billing/plans/{id}",
        "/api/v1/billing/payment-method",
        "/api/v1/billing/subscriptions",
        "/api/v1/billing/subscriptions/me",
        "/api/v1/billing/subscriptions/{id}",
        "/api/v1/billing/subscriptions/{id}/cancel",
        "/api/v1/billing/invoices",
        "/api/v1/billing/invoices/me",
        "/api/v1/billing/invoices/{id}",
        "/api/v1/billing/invoices/{id}/pay",
        "/api/v1/billing/invoices/{id}/void",
      ]),
    )
    // The declined payment method's problem is documented with its status.
    const put = document.paths["/api/v1/billing/payment-method"]?.put as { responses?: Record<string, unknown> }
    expect(Object.keys(put.responses ?? {})).toEqual(expect.arrayContaining(["200", "400", "402", "503"]))
    expect(document.paths["/api/v1/billing/plans"]?.get?.security ?? []).toEqual([])
    expect(document.paths["/api/v1/billing/plans"]?.post?.security).not.toEqual([])
  })

  it("refuses what its contract does not serve with a problem, not a stack trace", async () => {
    const response = await fetch(`${billing.url}/api/v1/billing/plans`, { method: "DELETE" })
    expect(response.status).toBe(405)
    expect(response.headers.get("content-type")).toContain("application/problem+json")
  })
})
