import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import { eventually } from "../../shared/testing/harness.ts"
import { callerOf } from "./platformFlow.ts"

/**
 * Billing's story through the gateway, as the administrator (every permission, `adminToken`), a signed-in customer
 * holding none (`customerToken`) and anonymous callers: plans created under an Idempotency-Key (a repeat is the same
 * plan) and listed publicly; the customer's card saved from a test token; a subscription whose first invoice is paid at
 * once (its receipt mailed); a declined card leaving a subscription `incomplete` with its invoice open, paid again with /pay after a good
 * card is saved (the same key replayed, no second attempt), which restores `active`; an open invoice voided by the
 * administrator (a second void 409); a cancellation at the period's end; the 4xx a customer meets (401, 403, someone
 * else's invoice 404, bad amounts and currencies 400 naming the field); and the audit log holding billing's events.
 */
export const runBillingFlow = async (
  url: string,
  adminToken: string,
  customerToken: string,
  /** Where the customer's receipts are read: the customer's address and the text of the newest mail to it. */
  receipts: { readonly email: string; readonly mailText: (email: string) => Promise<string> },
) => {
  const call = callerOf(url)
  const admin = { token: adminToken }
  const customer = { token: customerToken }
  const tag = randomUUID().slice(0, 8)

  // Plans: the administrator creates them, anyone lists the active ones.
  const key = { "idempotency-key": randomUUID() }
  const pro = { code: `pro-${tag}`, name: "Pro", amount: 1999, currency: "EUR", interval: "month" }
  const created = await call("POST", "/api/v1/billing/plans", { ...admin, body: pro, headers: key })
  expect(created.status, created.text).toBe(201)
  const plan = created.body as { id: string }
  const repeated = await call("POST", "/api/v1/billing/plans", { ...admin, body: pro, headers: key })
  expect(repeated.body).toEqual(created.body)
  const yen = await call("POST", "/api/v1/billing/plans", {
    ...admin,
    body: { code: `yen-${tag}`, name: "Yen", amount: 1200, currency: "JPY", interval: "year" },
  })
  expect(yen.status, yen.text).toBe(201)
  const listed: Array<{ id: string }> = []
  for (let cursor: string | null = null, first = true; first || cursor !== null; first = false) {
    const page = await call("GET", `/api/v1/billing/plans?limit=100${cursor ? `&cursor=${cursor}` : ""}`)
    expect(page.status, page.text).toBe(200)
    listed.push(...page.body.items)
    cursor = page.body.nextCursor
  }
  expect(listed.map((p) => p.id)).toEqual(expect.arrayContaining([plan.id, yen.body.id]))

  // The customer's card, then a subscription paid at once.
  const card = await call("PUT", "/api/v1/billing/payment-method", { ...customer, body: { token: "tok_visa" } })
  expect(card.status, card.text).toBe(200)
  expect(card.body).toEqual({ provider: "test", brand: "visa", last4: "4242" })
  const subscribed = await call("POST", "/api/v1/billing/subscriptions", {
    ...customer,
    body: { planId: plan.id },
    headers: { "idempotency-key": randomUUID() },
  })
  expect(subscribed.status, subscribed.text).toBe(201)
  expect(subscribed.body.status).toBe("active")
  const subscription = subscribed.body as { id: string; customerId: string }
  expect(subscribed.headers.get("location")).toBe(`/api/v1/billing/subscriptions/${subscription.id}`)
  const mine = await call("GET", "/api/v1/billing/invoices/me", customer)
  expect(mine.status).toBe(200)
  const first = mine.body.items.find((i: { subscriptionId: string }) => i.subscriptionId === subscription.id)
  expect(first).toMatchObject({ status: "paid", total: 1999, amountPaid: 1999, currency: "EUR", attempts: 1 })
  expect(first.number).toMatch(/^\d{4}-\d{6,}$/)
  // The receipt of the paid invoice, mailed to the address identity holds for the customer.
  await eventually(
    "the receipt mail",
    async () => (await receipts.mailText(receipts.email)).includes(`Invoice ${first.number}`),
    20_000,
  )
  expect(await receipts.mailText(receipts.email)).toContain("19.99 EUR was paid")

  // A declined card: incomplete, the invoice open; a good card and /pay restore it (the key replayed, not re-run).
  await call("PUT", "/api/v1/billing/payment-method", { ...customer, body: { token: "tok_declined" } })
  const declined = await call("POST", "/api/v1/billing/subscriptions", { ...customer, body: { planId: yen.body.id } })
  expect(declined.status, declined.text).toBe(201)
  expect(declined.body.status).toBe("incomplete")
  const open = (await call("GET", "/api/v1/billing/invoices/me?status=open", customer)).body.items.find(
    (i: { subscriptionId: string }) => i.subscriptionId === declined.body.id,
  )
  expect(open).toMatchObject({ status: "open", currency: "JPY", amountDue: 1200, attempts: 1 })
  await call("PUT", "/api/v1/billing/payment-method", { ...customer, body: { token: "tok_visa" } })
  const payKey = { "idempotency-key": randomUUID() }
  const paid = await call("POST", `/api/v1/billing/invoices/${open.id}/pay`, { ...customer, headers: payKey })
  expect(paid.status, paid.text).toBe(200)
  expect(paid.body).toMatchObject({ status: "paid", attempts: 2, amountPaid: 1200 })
  const replayed = await call("POST", `/api/v1/billing/invoices/${open.id}/pay`, { ...customer, headers: payKey })
  expect(replayed.body).toEqual(paid.body)
  const restored = await call("GET", `/api/v1/billing/subscriptions/${declined.body.id}`, customer)
  expect(restored.body.status).toBe("active")
  expect((await call("POST", `/api/v1/billing/invoices/${open.id}/pay`, customer)).status).toBe(409)

  // An unpaid invoice voided by the administrator; voiding is open → void only.
  await call("PUT", "/api/v1/billing/payment-method", { ...customer, body: { token: "tok_insufficient_funds" } })
  const unpaid = await call("POST", "/api/v1/billing/subscriptions", { ...customer, body: { planId: plan.id } })
  expect(unpaid.body.status).toBe("incomplete")
  const invoices = await call(
    "GET",
    `/api/v1/billing/invoices?customerId=${subscription.customerId}&status=open`,
    admin,
  )
  expect(invoices.status, invoices.text).toBe(200)
  const toVoid = invoices.body.items.find((i: { subscriptionId: string }) => i.subscriptionId === unpaid.body.id)
  expect((await call("POST", `/api/v1/billing/invoices/${toVoid.id}/void`, customer)).status).toBe(403)
  const voided = await call("POST", `/api/v1/billing/invoices/${toVoid.id}/void`, admin)
  expect(voided.status, voided.text).toBe(200)
  expect(voided.body.status).toBe("void")
  expect((await call("POST", `/api/v1/billing/invoices/${toVoid.id}/void`, admin)).status).toBe(409)

  // A plan change: the preview, then the change writing the same lines (prorated by the second, so the two agree to
  // the second they were asked at: the flow compares their shape and sign, the function's tests the amounts).
  const plus = await call("POST", "/api/v1/billing/plans", {
    ...admin,
    body: { code: `plus-${tag}`, name: "Plus", amount: 2999, currency: "EUR", interval: "month" },
  })
  expect(plus.status, plus.text).toBe(201)
  const changePath = `/api/v1/billing/subscriptions/${subscription.id}/change-plan`
  const preview = await call("GET", `${changePath}/preview?planId=${plus.body.id}`, customer)
  expect(preview.status, preview.text).toBe(200)
  expect(preview.body).toMatchObject({ currency: "EUR", lines: [{}, {}] })
  expect(preview.body.lines[0].amount).toBeLessThan(0)
  expect(preview.body.lines[1].amount).toBeGreaterThan(0)
  expect(preview.body.total).toBeGreaterThan(0)
  expect((await call("GET", `${changePath}/preview?planId=nope`, customer)).status).toBe(400)
  const changed = await call("POST", changePath, { ...customer, body: { planId: plus.body.id } })
  expect(changed.status, changed.text).toBe(200)
  expect(changed.body).toMatchObject({ subscription: { planId: plus.body.id, status: "active" }, invoiceId: null })
  expect(changed.body.lines.map((l: { description: string }) => l.description.split(" ")[0])).toEqual(
    preview.body.lines.map((l: { description: string }) => l.description.split(" ")[0]),
  )
  expect((await call("POST", changePath, { ...customer, body: { planId: plus.body.id } })).status).toBe(409)

  // A plan archived by the administrator: out of the public list, refused to new subscribers.
  const archived = await call("PATCH", `/api/v1/billing/plans/${yen.body.id}`, { ...admin, body: { active: false } })
  expect(archived.status, archived.text).toBe(200)
  expect(archived.body).toMatchObject({ active: false, amount: 1200 })
  const publicPlans = await call("GET", "/api/v1/billing/plans?limit=100")
  expect(publicPlans.body.items.map((p: { id: string }) => p.id)).not.toContain(yen.body.id)
  expect((await call("PATCH", `/api/v1/billing/plans/${plus.body.id}`, { ...admin, body: { amount: 1 } })).status).toBe(
    400,
  )

  // The customer's subscriptions, and everyone's for the administrator.
  const mySubscriptions = await call("GET", "/api/v1/billing/subscriptions/me", customer)
  expect(mySubscriptions.status, mySubscriptions.text).toBe(200)
  expect(mySubscriptions.body.items.map((s: { id: string }) => s.id)).toEqual(
    expect.arrayContaining([subscription.id, declined.body.id]),
  )
  const theirSubscriptions = await call(
    "GET",
    `/api/v1/billing/subscriptions?customerId=${subscription.customerId}&status=active`,
    admin,
  )
  expect(theirSubscriptions.status, theirSubscriptions.text).toBe(200)
  expect(theirSubscriptions.body.items.map((s: { id: string }) => s.id)).toContain(subscription.id)

  // A test clock: a trial on the clock's time, its first invoice made and paid when the clock passes the trial's end.
  const trial = await call("POST", "/api/v1/billing/plans", {
    ...admin,
    body: { code: `trial-${tag}`, name: "Trial", amount: 500, currency: "EUR", interval: "month", trialDays: 14 },
  })
  expect(trial.status, trial.text).toBe(201)
  const clock = await call("POST", "/api/v1/billing/test-clocks", {
    ...admin,
    body: { frozenTime: "2030-01-01T00:00:00Z" },
  })
  expect(clock.status, clock.text).toBe(201)
  expect((await call("POST", "/api/v1/billing/test-clocks", { ...customer, body: {} })).status).toBe(403)
  await call("PUT", "/api/v1/billing/payment-method", { ...admin, body: { token: "tok_visa" } })
  const onClock = await call("POST", "/api/v1/billing/subscriptions", {
    ...admin,
    body: { planId: trial.body.id, testClockId: clock.body.id },
  })
  expect(onClock.status, onClock.text).toBe(201)
  expect(onClock.body).toMatchObject({ status: "trialing", trialEnd: "2030-01-15T00:00:00.000Z" })
  const advanced = await call("POST", `/api/v1/billing/test-clocks/${clock.body.id}/advance`, {
    ...admin,
    body: { to: "2030-01-16T00:00:00Z" },
  })
  expect(advanced.status, advanced.text).toBe(200)
  const afterTrial = await call("GET", `/api/v1/billing/subscriptions/${onClock.body.id}`, admin)
  expect(afterTrial.body).toMatchObject({ status: "active", currentPeriodStart: "2030-01-15T00:00:00.000Z" })
  const trialInvoices = await call("GET", `/api/v1/billing/invoices/me?status=paid`, admin)
  expect(
    trialInvoices.body.items.filter((i: { subscriptionId: string }) => i.subscriptionId === onClock.body.id),
  ).toMatchObject([{ total: 500, periodStart: "2030-01-15T00:00:00.000Z" }])

  // Cancellation at the period's end (the default).
  const canceled = await call("POST", `/api/v1/billing/subscriptions/${subscription.id}/cancel`, { ...customer })
  expect(canceled.status, canceled.text).toBe(200)
  expect(canceled.body).toMatchObject({ status: "active", cancelAtPeriodEnd: true })

  // What a customer is refused.
  expect((await call("POST", "/api/v1/billing/plans", { body: pro })).status).toBe(401)
  expect(
    (await call("POST", "/api/v1/billing/plans", { ...customer, body: { ...pro, code: `x-${tag}` } })).status,
  ).toBe(403)
  expect((await call("GET", "/api/v1/billing/subscriptions", customer)).status).toBe(403)
  await call("PUT", "/api/v1/billing/payment-method", { ...admin, body: { token: "tok_visa" } })
  const admins = await call("POST", "/api/v1/billing/subscriptions", { ...admin, body: { planId: plan.id } })
  expect(admins.status, admins.text).toBe(201)
  const adminInvoice = (await call("GET", "/api/v1/billing/invoices/me", admin)).body.items[0]
  const theirs = await call("GET", `/api/v1/billing/invoices/${adminInvoice.id}`, customer)
  expect(theirs.status).toBe(404)
  expect(theirs.headers.get("content-type")).toContain("application/problem+json")
  for (const [field, value] of [
    ["amount", -1],
    ["amount", 19.99],
    ["currency", "XYZ"],
    ["intervalCount", 0],
  ] as const) {
    const bad = await call("POST", "/api/v1/billing/plans", {
      ...admin,
      body: { ...pro, code: `b-${tag}`, [field]: value },
    })
    expect(bad.status, `${field} ${value}`).toBe(400)
    expect(bad.body.errors.map((e: { path: string }) => e.path)).toContain(field)
  }
  const unknownToken = await call("PUT", "/api/v1/billing/payment-method", { ...customer, body: { token: "tok_nope" } })
  expect(unknownToken.status).toBe(400)

  // Audit records billing's events too: the subscription's life and the plan's creation.
  await eventually(
    "billing's events in the audit log",
    async () => {
      const actions = async (target: string) => {
        const events = await call("GET", `/api/v1/audit/events?targetId=${target}&limit=100`, admin)
        return new Set((events.body?.items ?? []).map((e: { action: string }) => e.action))
      }
      const onPlan = await actions(plan.id)
      const onSubscription = await actions(declined.body.id)
      const onVoided = await actions(unpaid.body.id)
      return (
        onPlan.has("billing.plan.created") &&
        ["billing.subscription.created", "billing.invoice.finalized", "billing.invoice.payment_failed"].every((a) =>
          onSubscription.has(a),
        ) &&
        onSubscription.has("billing.invoice.paid") &&
        onVoided.has("billing.invoice.voided")
      )
    },
    20_000,
  )
}
