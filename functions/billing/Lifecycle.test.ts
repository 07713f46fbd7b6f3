// Billing's engine on the real Postgres: subscribing (with and without a trial), payment and dunning on the schedule,
// renewals exactly once per period also when two engines renew the same due subscriptions at once, an attempt cut
// off after the provider charged repeated under its key (one charge), every transition the engine refuses, and
// gapless invoice numbers under concurrency.
import { randomUUID } from "node:crypto"
import { Effect, Exit, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chargeKey } from "./Provider.ts"
import { billingDbOptions } from "./testing/engineDb.ts"
import { createPlan, type EngineUnderTest, eventsOf, savePaymentMethod, startEngine } from "./testing/engineHarness.ts"

const DAY = 86_400_000
const T0 = new Date("2026-01-31T10:00:00.000Z")
const at = (days: number, from = T0) => new Date(from.getTime() + days * DAY)

let t: EngineUnderTest
beforeAll(async () => {
  t = await startEngine({ emails: {} })
}, 60_000)
afterAll(() => t?.close())

const failureOf = async <A, E>(effect: Effect.Effect<A, E, never>) => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  return Option.getOrThrow(Exit.findErrorOption(exit)) as { _tag: string; detail?: string }
}

const invoicesOf = (subscriptionId: string) =>
  t.q<{
    id: string
    number: string
    status: string
    period_start: Date
    attempts: number
    next_attempt_at: Date | null
  }>(
    `SELECT id, number, status, period_start, attempts, next_attempt_at FROM $S.invoices
     WHERE subscription_id = $1 ORDER BY period_start`,
    [subscriptionId],
  )

const chargesOf = (invoiceId: string) =>
  t.q<{ idempotency_key: string; outcome: string }>(
    `SELECT idempotency_key, outcome FROM $S.test_provider_charges WHERE idempotency_key LIKE $1 ORDER BY 1`,
    [`billing-invoice-${invoiceId}-%`],
  )

describe("subscribe", () => {
  it("without a trial: the subscription and its first invoice, numbered, paid at once; events in sequence; a receipt", async () => {
    const customer = randomUUID()
    const t2 = await startEngine({ db: t.dbOptions, emails: { [customer]: "ada@example.com" } })
    try {
      const plan = await createPlan(t2, { amount: 1999 })
      await savePaymentMethod(t2, customer, "tok_visa")
      const { subscription, invoice } = await t2.run(
        t2.engine.subscribe({ customerId: customer, planId: plan, now: T0 }),
      )
      expect(subscription).toMatchObject({
        status: "active",
        currentPeriodStart: T0.toISOString(),
        // Monthly from Jan 31: Feb 28.
        currentPeriodEnd: "2026-02-28T10:00:00.000Z",
        trialEnd: null,
      })
      const paid = Option.getOrThrow(invoice)
      expect(paid).toMatchObject({ status: "paid", total: 1999, amountPaid: 1999, amountDue: 0, attempts: 1 })
      expect(paid.number).toMatch(/^2026-\d{6}$/)
      expect(await chargesOf(paid.id)).toEqual([{ idempotency_key: chargeKey(paid.id, 1), outcome: "paid" }])
      const events = await eventsOf(t, subscription.id)
      expect(events.map((e) => [e.type, e.data.sequence])).toEqual([
        ["billing.subscription.created", 1],
        ["billing.invoice.finalized", 2],
        ["billing.invoice.paid", 3],
      ])
      expect(events[2]!.data).toMatchObject({ amountPaid: 1999, currency: "EUR", subscriptionStatus: "active" })
      const mails = await t.q<{ to: string; subject: string }>(
        `SELECT "to", subject FROM $S.mail_outbox WHERE "to" = $1`,
        ["ada@example.com"],
      )
      expect(mails).toEqual([{ to: "ada@example.com", subject: `Receipt for invoice ${paid.number}: 19.99 EUR paid` }])
    } finally {
      await t2.close()
    }
  })

  it("declined: incomplete, the invoice open with its first retry a day later", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 500 })
    await savePaymentMethod(t, customer, "tok_declined")
    const { subscription, invoice } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    expect(subscription.status).toBe("incomplete")
    expect(Option.getOrThrow(invoice)).toMatchObject({
      status: "open",
      attempts: 1,
      amountDue: 500,
      nextAttemptAt: at(1).toISOString(),
    })
    expect((await eventsOf(t, subscription.id)).map((e) => e.type)).toEqual([
      "billing.subscription.created",
      "billing.invoice.finalized",
      "billing.invoice.payment_failed",
    ])
  })

  it("with a trial: trialing until its end, no invoice; the trial's end makes the first invoice", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 900, trialDays: 14 })
    const { subscription, invoice } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    expect(subscription).toMatchObject({
      status: "trialing",
      trialEnd: at(14).toISOString(),
      currentPeriodEnd: at(14).toISOString(),
    })
    expect(Option.isNone(invoice)).toBe(true)
    // Not due before the trial's end.
    expect(Option.isNone(await t.run(t.engine.renew(subscription.id, at(13))))).toBe(true)
    await savePaymentMethod(t, customer, "tok_visa")
    const renewed = Option.getOrThrow(await t.run(t.engine.renew(subscription.id, at(14))))
    expect(renewed).toMatchObject({ status: "active", currentPeriodStart: at(14).toISOString() })
    const invoices = await invoicesOf(subscription.id)
    expect(invoices.map((i) => [i.status, i.period_start.toISOString()])).toEqual([["paid", at(14).toISOString()]])
  })

  it("refuses an unknown plan (404), an archived plan and a plan without a trial when no method is saved (409)", async () => {
    const customer = randomUUID()
    expect(await failureOf(t.engine.subscribe({ customerId: customer, planId: randomUUID() }))).toMatchObject({
      _tag: "NotFound",
    })
    const archived = await createPlan(t, { amount: 100, active: false })
    expect(await failureOf(t.engine.subscribe({ customerId: customer, planId: archived }))).toMatchObject({
      _tag: "Conflict",
      detail: "the plan is archived: choose an active plan",
    })
    const plan = await createPlan(t, { amount: 100 })
    const missing = await failureOf(t.engine.subscribe({ customerId: customer, planId: plan }))
    expect(missing._tag).toBe("Conflict")
    expect(missing.detail).toContain("no payment method is saved")
    expect(
      await failureOf(t.engine.subscribe({ customerId: customer, planId: plan, testClockId: randomUUID() })),
    ).toMatchObject({
      _tag: "NotFound",
    })
  })
})

describe("dunning", () => {
  it("retries on days 1, 3 and 5 after the first failure, past_due meanwhile; then uncollectible and canceled", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 700, interval: "month" })
    await savePaymentMethod(t, customer, "tok_visa")
    const { subscription } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    await savePaymentMethod(t, customer, "tok_insufficient_funds")
    const end = new Date(subscription.currentPeriodEnd)
    Option.getOrThrow(await t.run(t.engine.renew(subscription.id, end)))
    const [, renewal] = await invoicesOf(subscription.id)
    expect(renewal).toMatchObject({ status: "open", attempts: 1 })
    expect(renewal!.next_attempt_at?.toISOString()).toBe(at(1, end).toISOString())
    const status = async () =>
      (await t.q<{ status: string }>(`SELECT status FROM $S.subscriptions WHERE id = $1`, [subscription.id]))[0]!.status
    expect(await status()).toBe("past_due")
    // Not tried again before the retry's time.
    while ((await t.run(t.engine.retryDue(at(0.5, end)))).processed > 0) {}
    expect((await invoicesOf(subscription.id))[1]!.attempts).toBe(1)
    for (const [day, next] of [
      [1, 3],
      [3, 5],
    ] as const) {
      // Other invoices in this schema may be due too: the sweep is run until nothing is left.
      while ((await t.run(t.engine.retryDue(at(day, end)))).processed > 0) {}
      const [, again] = await invoicesOf(subscription.id)
      expect(again!.next_attempt_at?.toISOString()).toBe(at(next, end).toISOString())
      expect(await status()).toBe("past_due")
    }
    while ((await t.run(t.engine.retryDue(at(5, end)))).processed > 0) {}
    const [, last] = await invoicesOf(subscription.id)
    expect(last).toMatchObject({ status: "uncollectible", attempts: 4, next_attempt_at: null })
    expect(await status()).toBe("canceled")
    const types = (await eventsOf(t, subscription.id)).map((e) => e.type)
    expect(types.slice(-3)).toEqual([
      "billing.invoice.payment_failed",
      "billing.invoice.payment_failed",
      "billing.subscription.canceled",
    ])
    expect(types.filter((type) => type === "billing.subscription.past_due")).toHaveLength(1)
    expect((await chargesOf(renewal!.id)).map((c) => c.outcome)).toEqual([
      "declined",
      "declined",
      "declined",
      "declined",
    ])
  })

  it("/pay on an open invoice of a past_due subscription pays it now and restores active", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 300, interval: "week" })
    await savePaymentMethod(t, customer, "tok_visa")
    const { subscription } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    await savePaymentMethod(t, customer, "tok_declined")
    await t.run(t.engine.renew(subscription.id, at(7)))
    const [, open] = await invoicesOf(subscription.id)
    await savePaymentMethod(t, customer, "tok_visa")
    const paid = await t.run(t.engine.collect(open!.id, { manual: true, now: at(7.5) }))
    expect(paid).toMatchObject({ status: "paid", attempts: 2, nextAttemptAt: null })
    const rows = await t.q<{ status: string }>(`SELECT status FROM $S.subscriptions WHERE id = $1`, [subscription.id])
    expect(rows[0]!.status).toBe("active")
  })
})

describe("transitions the engine refuses", () => {
  it("pays and voids only along the allowed transitions (every other is a 409 naming the states)", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 100, interval: "day" })
    await savePaymentMethod(t, customer, "tok_declined")
    const { invoice } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    const open = Option.getOrThrow(invoice)
    const setStatus = (status: string) =>
      t.q(
        `UPDATE $S.invoices SET status = $2, paid_at = CASE WHEN $2 = 'paid' THEN now() END, next_attempt_at = NULL
         WHERE id = $1`,
        [open.id, status],
      )
    // From each reachable status, /pay (→ paid) and /void (→ void): allowed exactly as InvoiceStatus says.
    for (const [from, operation, allowed] of [
      ["paid", "pay", false],
      ["paid", "void", false],
      ["void", "pay", false],
      ["void", "void", false],
      ["uncollectible", "void", false],
      ["open", "void", true],
    ] as const) {
      await setStatus(from)
      const effect =
        operation === "pay"
          ? t.engine.collect(open.id, { manual: true, now: T0 })
          : t.engine.voidInvoice(open.id, { now: T0 })
      const exit = await t.runExit(effect)
      if (allowed) {
        expect([from, operation, Exit.isSuccess(exit)]).toEqual([from, operation, true])
      } else {
        const error = Option.getOrThrow(Exit.findErrorOption(exit)) as { _tag: string; detail: string }
        expect([from, operation, error._tag]).toEqual([from, operation, "Conflict"])
        expect(error.detail).toContain(from)
      }
    }
    // An uncollectible invoice may still be paid.
    await setStatus("uncollectible")
    await savePaymentMethod(t, customer, "tok_visa")
    expect((await t.run(t.engine.collect(open.id, { manual: true, now: T0 }))).status).toBe("paid")
  })

  it("refuses to void while a payment attempt is undecided, and cancels only what is live", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 100, interval: "day" })
    await savePaymentMethod(t, customer, "tok_declined")
    const { subscription, invoice } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    const open = Option.getOrThrow(invoice)
    await t.q(
      `INSERT INTO $S.payment_attempts (invoice_id, attempt, provider, idempotency_key, amount, currency)
               VALUES ($1, 2, 'test', $2, 100, 'EUR')`,
      [open.id, chargeKey(open.id, 2)],
    )
    expect(await failureOf(t.engine.voidInvoice(open.id))).toMatchObject({ _tag: "Conflict" })
    const canceled = await t.run(t.engine.cancel(subscription.id, { atPeriodEnd: false, now: T0 }))
    expect(canceled).toMatchObject({ status: "canceled", canceledAt: T0.toISOString() })
    expect(await failureOf(t.engine.cancel(subscription.id, { atPeriodEnd: true }))).toMatchObject({
      _tag: "Conflict",
      detail: "the subscription is already canceled",
    })
    expect(await failureOf(t.engine.voidInvoice(randomUUID()))).toMatchObject({ _tag: "NotFound" })
    expect(await failureOf(t.engine.collect(randomUUID()))).toMatchObject({ _tag: "NotFound" })
  })

  it("cancels at the period's end: live until then, canceled by the renewal, no invoice for the next period", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 100, interval: "week" })
    await savePaymentMethod(t, customer, "tok_visa")
    const { subscription } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    const scheduled = await t.run(t.engine.cancel(subscription.id, { atPeriodEnd: true, now: at(1) }))
    expect(scheduled).toMatchObject({ status: "active", cancelAtPeriodEnd: true, canceledAt: null })
    await t.run(t.engine.renew(subscription.id, at(7)))
    const rows = await t.q<{ status: string; canceled_at: Date }>(
      `SELECT status, canceled_at FROM $S.subscriptions WHERE id = $1`,
      [subscription.id],
    )
    expect(rows[0]).toEqual({ status: "canceled", canceled_at: at(7) })
    expect(await invoicesOf(subscription.id)).toHaveLength(1)
  })
})

describe("exactly once", () => {
  it("two engines renewing the same 60 due subscriptions at once: one invoice per subscription and period, each charged once", async () => {
    const solo = await startEngine()
    const other = await startEngine({ db: solo.dbOptions })
    try {
      const plan = await createPlan(solo, { amount: 1000, interval: "month" })
      const ids: Array<string> = []
      for (let i = 0; i < 60; i++) {
        const customer = randomUUID()
        await savePaymentMethod(solo, customer, "tok_visa")
        const { subscription } = await solo.run(solo.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
        ids.push(subscription.id)
      }
      const now = at(40)
      const drain = async (e: EngineUnderTest) => {
        let total = 0
        for (;;) {
          const { processed } = await e.run(e.engine.renewDue(now, { limit: 7 }))
          if (processed === 0) return total
          total += processed
        }
      }
      // Plus single renewals of the same subscriptions racing the sweeps.
      const [a, b] = await Promise.all([
        drain(solo),
        drain(other),
        Promise.all(ids.slice(0, 10).map((id) => other.run(other.engine.renew(id, now)))),
      ])
      expect(a + b).toBeLessThanOrEqual(60)
      const invoices = await solo.q<{ subscription_id: string; n: string; paid: string }>(
        `SELECT subscription_id, count(*) AS n, count(*) FILTER (WHERE status = 'paid') AS paid FROM $S.invoices
         WHERE reason = 'subscription_cycle' GROUP BY subscription_id`,
      )
      expect(invoices).toHaveLength(60)
      expect(invoices.every((row) => Number(row.n) === 1 && Number(row.paid) === 1)).toBe(true)
      const charges = await solo.q<{ n: string }>(
        `SELECT count(*) AS n FROM $S.test_provider_charges WHERE outcome = 'paid'`,
      )
      expect(Number(charges[0]!.n)).toBe(120)
      const numbers = await solo.q<{ number: string }>(`SELECT number FROM $S.invoices ORDER BY number`)
      expect(numbers.map((row) => row.number)).toEqual(
        Array.from({ length: 120 }, (_, i) => `2026-${String(i + 1).padStart(6, "0")}`),
      )
    } finally {
      await other.close()
      await solo.close()
    }
  })

  // An engine whose process "dies" right after the provider answered (while `crash.on`), and a customer subscribed
  // through it with tok_visa: the first invoice's attempt 1 charged at the provider, its outcome never recorded.
  const crashedAfterCharge = async () => {
    const crash = { on: true }
    const crashing = await startEngine({
      engine: { attemptLeaseMs: 60_000 },
      provider: (provider) => ({
        ...provider,
        charge: (request) =>
          Effect.flatMap(provider.charge(request), (outcome) =>
            crash.on ? Effect.die(new Error("the process died after the provider answered")) : Effect.succeed(outcome),
          ),
      }),
    })
    const customer = randomUUID()
    const plan = await createPlan(crashing, { amount: 4200 })
    await savePaymentMethod(crashing, customer, "tok_visa")
    const exit = await crashing.runExit(crashing.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
    expect(Exit.isFailure(exit)).toBe(true)
    return { crashing, crash, customer }
  }

  it("an attempt cut off after the provider charged is repeated under its key: one charge, paid, one attempt", async () => {
    const { crashing, crash } = await crashedAfterCharge()
    try {
      const [invoice] = await crashing.q<{ id: string; status: string; attempts: number }>(
        `SELECT id, status, attempts FROM $S.invoices`,
      )
      expect(invoice).toMatchObject({ status: "open", attempts: 1 })
      const undecided = await crashing.q(`SELECT attempt FROM $S.payment_attempts WHERE outcome IS NULL`)
      expect(undecided).toEqual([{ attempt: 1 }])
      crash.on = false
      // Not before the lease of the instance that was charging it has ended.
      expect((await crashing.run(crashing.engine.retryDue(new Date(T0.getTime() + 30_000)))).processed).toBe(0)
      expect((await crashing.run(crashing.engine.retryDue(new Date(T0.getTime() + 60_000)))).processed).toBe(1)
      const [after] = await crashing.q<{ status: string; attempts: number }>(`SELECT status, attempts FROM $S.invoices`)
      expect(after).toEqual({ status: "paid", attempts: 1 })
      const ledger = await crashing.q(`SELECT idempotency_key FROM $S.test_provider_charges`)
      expect(ledger).toEqual([{ idempotency_key: chargeKey(invoice!.id, 1) }])
      const attempts = await crashing.q(`SELECT attempt, outcome FROM $S.payment_attempts`)
      expect(attempts).toEqual([{ attempt: 1, outcome: "paid" }])
    } finally {
      await crashing.close()
    }
  })

  it("an undecided attempt is repeated with the method it was made with, not one the customer saved since", async () => {
    const { crashing, crash, customer } = await crashedAfterCharge()
    try {
      // The attempt holds the method it charged.
      expect(await crashing.q(`SELECT customer_ref, payment_method_ref, outcome FROM $S.payment_attempts`)).toEqual([
        { customer_ref: `cus_test_${customer}`, payment_method_ref: "pm_test_tok_visa", outcome: null },
      ])
      // Meanwhile the customer saves another card: the repeat under the same key must still be the visa's charge (the
      // provider refuses a key with other parameters: the attempt would stay undecided for ever).
      await savePaymentMethod(crashing, customer, "tok_declined")
      crash.on = false
      expect((await crashing.run(crashing.engine.retryDue(new Date(T0.getTime() + 60_000)))).processed).toBe(1)
      expect(await crashing.q(`SELECT status, attempts FROM $S.invoices`)).toEqual([{ status: "paid", attempts: 1 }])
      expect(await crashing.q(`SELECT attempt, outcome FROM $S.payment_attempts`)).toEqual([
        { attempt: 1, outcome: "paid" },
      ])
      expect(await crashing.q(`SELECT payment_method_ref, outcome FROM $S.test_provider_charges`)).toEqual([
        { payment_method_ref: "pm_test_tok_visa", outcome: "paid" },
      ])
    } finally {
      await crashing.close()
    }
  })

  it("an unavailable provider leaves the attempt undecided and repeats it (same key) a few minutes later", async () => {
    let down = true
    const flaky = await startEngine({
      engine: { unavailableRetryMs: 300_000 },
      provider: (provider) => ({
        ...provider,
        charge: (request) =>
          down ? Effect.succeed({ _tag: "unavailable" as const, reason: "outage" }) : provider.charge(request),
      }),
    })
    try {
      const customer = randomUUID()
      const plan = await createPlan(flaky, { amount: 4200 })
      await savePaymentMethod(flaky, customer, "tok_visa")
      const { invoice } = await flaky.run(flaky.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))
      expect(Option.getOrThrow(invoice)).toMatchObject({
        status: "open",
        attempts: 1,
        nextAttemptAt: new Date(T0.getTime() + 300_000).toISOString(),
      })
      down = false
      await flaky.run(flaky.engine.retryDue(new Date(T0.getTime() + 300_000)))
      expect(await flaky.q(`SELECT attempt, outcome FROM $S.payment_attempts`)).toEqual([
        { attempt: 1, outcome: "paid" },
      ])
    } finally {
      await flaky.close()
    }
  })

  it("numbers 50 concurrent finalizations 1..50 with no gap, while 10 roll back after taking a number and 10 are refused", async () => {
    const fresh = await startEngine({ db: billingDbOptions(undefined, 20) })
    try {
      const plan = await createPlan(fresh, { amount: 100 })
      const customers = Array.from({ length: 70 }, () => randomUUID())
      const poisoned = customers.slice(50, 60)
      // 60 with a method: 50 finalized, 10 whose `finalized` event the outbox refuses (a trigger), so their
      // transaction rolls back after it took its number; 10 without a method (refused before numbering).
      for (const customer of customers.slice(0, 60)) await savePaymentMethod(fresh, customer, "tok_visa")
      await fresh.q(`CREATE TABLE $S.poisoned (id text PRIMARY KEY)`)
      await fresh.q(`INSERT INTO $S.poisoned SELECT unnest($1::text[])`, [poisoned])
      await fresh.q(
        `CREATE FUNCTION $S.poison() RETURNS trigger LANGUAGE plpgsql AS $fn$
         BEGIN
           IF NEW.event::jsonb ->> 'type' = 'billing.invoice.finalized'
              AND EXISTS (SELECT 1 FROM ${fresh.schema}.poisoned WHERE id = NEW.event::jsonb -> 'data' ->> 'customerId') THEN
             RAISE EXCEPTION 'poisoned finalization';
           END IF;
           RETURN NEW;
         END $fn$`,
      )
      await fresh.q(`CREATE TRIGGER poison BEFORE INSERT ON $S.outbox FOR EACH ROW EXECUTE FUNCTION $S.poison()`)
      const shuffled = [...customers].sort(() => Math.random() - 0.5)
      const results = await Promise.all(
        shuffled.map((customer) =>
          fresh.runExit(fresh.engine.subscribe({ customerId: customer, planId: plan, now: T0 })),
        ),
      )
      expect(results.filter(Exit.isSuccess)).toHaveLength(50)
      const failed = results
        .filter(Exit.isFailure)
        .map((exit) => (Option.getOrThrow(Exit.findErrorOption(exit)) as { _tag: string })._tag)
      expect(failed.sort()).toEqual([...Array(10).fill("Conflict"), ...Array(10).fill("ServiceUnavailable")])
      const numbers = await fresh.q<{ number: string }>(`SELECT number FROM $S.invoices ORDER BY number`)
      expect(numbers.map((row) => row.number)).toEqual(
        Array.from({ length: 50 }, (_, i) => `2026-${String(i + 1).padStart(6, "0")}`),
      )
      expect(await fresh.q(`SELECT year, last FROM $S.invoice_numbers`)).toEqual([{ year: 2026, last: "50" }])
    } finally {
      await fresh.close()
    }
  })

  it("a subscription that cannot be renewed is logged and left due; the batch's others are renewed", async () => {
    const fresh = await startEngine()
    try {
      const plan = await createPlan(fresh, { amount: 1000 })
      const ids: Array<string> = []
      for (let i = 0; i < 3; i++) {
        const customer = randomUUID()
        await savePaymentMethod(fresh, customer, "tok_visa")
        ids.push(
          (await fresh.run(fresh.engine.subscribe({ customerId: customer, planId: plan, now: T0 }))).subscription.id,
        )
      }
      // A pending line that makes the next invoice's total overflow: its renewal dies.
      await fresh.q(
        `INSERT INTO $S.pending_lines (subscription_id, description, amount, currency, period_start, period_end)
         VALUES ($1, 'Overflow', 9007199254740991, 'EUR', $2, $3)`,
        [ids[1], T0, at(1)],
      )
      expect((await fresh.run(fresh.engine.renewDue(at(40)))).processed).toBe(2)
      expect((await fresh.run(fresh.engine.renewDue(at(40)))).processed).toBe(0)
      const counts = await fresh.q<{ id: string; n: string }>(
        `SELECT s.id, count(i.id) AS n FROM $S.subscriptions s LEFT JOIN $S.invoices i ON i.subscription_id = s.id
         GROUP BY s.id`,
      )
      expect(Object.fromEntries(counts.map((c) => [c.id, Number(c.n)]))).toEqual({
        [ids[0]!]: 2,
        [ids[1]!]: 1,
        [ids[2]!]: 2,
      })
      expect(await fresh.q(`SELECT number FROM $S.invoices ORDER BY number`)).toHaveLength(5)
    } finally {
      await fresh.close()
    }
  })
})
