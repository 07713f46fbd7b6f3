// Test clocks and the renewal job on the real Postgres: the contract's scenario (trial → first invoice → renewal →
// declined → retries → canceled) through one clock, step by step and in one advance; the wall-time sweep leaving
// clock subscriptions alone; an advance's bad input.
import { randomUUID } from "node:crypto"
import { Effect, Exit, Layer, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Running, start } from "../../shared/testing/harness.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { drain } from "./Renewals.ts"
import { TestClocks } from "./TestClocks.ts"
import { createPlan, type EngineUnderTest, eventsOf, savePaymentMethod, startEngine } from "./testing/engineHarness.ts"

const DAY = 86_400_000
const T0 = new Date("2026-03-01T12:00:00.000Z")
const at = (days: number, from = T0) => new Date(from.getTime() + days * DAY)

let t: EngineUnderTest
let clocks: Running<TestClocks>
const advance = (clockId: string, to: Date) =>
  Effect.runPromise(
    Effect.provideContext(
      Effect.flatMap(Effect.service(TestClocks), (c) => c.advance(clockId, to)),
      clocks.context,
    ),
  )
const advanceExit = (clockId: string, to: Date) =>
  Effect.runPromiseExit(
    Effect.provideContext(
      Effect.flatMap(Effect.service(TestClocks), (c) => c.advance(clockId, to)),
      clocks.context,
    ),
  )
const newClock = (time = T0) =>
  Effect.runPromise(
    Effect.provideContext(
      Effect.flatMap(Effect.service(TestClocks), (c) => c.create(randomUUID(), time)),
      clocks.context,
    ),
  )

beforeAll(async () => {
  t = await startEngine()
  clocks = await start(TestClocks.layer.pipe(Layer.provide(Layer.succeedContext(t.running.context))))
}, 60_000)
afterAll(async () => {
  await clocks?.close()
  await t?.close()
})

const state = async (subscriptionId: string) => {
  const [subscription] = await t.q<{ status: string; current_period_end: Date }>(
    `SELECT status, current_period_end FROM $S.subscriptions WHERE id = $1`,
    [subscriptionId],
  )
  const invoices = await t.q<{ status: string; period_start: Date; attempts: number; reason: string }>(
    `SELECT status, period_start, attempts, reason FROM $S.invoices WHERE subscription_id = $1 ORDER BY period_start`,
    [subscriptionId],
  )
  return { status: subscription!.status, end: subscription!.current_period_end, invoices }
}

/** A customer on a clock with a 14-day trial of a monthly plan, paying with tok_visa. */
const onClock = async (clockId: string) => {
  const customer = randomUUID()
  const plan = await createPlan(t, { amount: 2500, interval: "month", trialDays: 14 })
  await savePaymentMethod(t, customer, "tok_visa")
  const { subscription } = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, testClockId: clockId }))
  return { customer, subscription }
}

describe("a test clock's scenario: trial → first invoice → renewal → declined → retries → canceled", () => {
  it("step by step", async () => {
    const clock = await newClock()
    const { customer, subscription } = await onClock(clock.id)
    // The subscription lives on the clock's time, not the wall's.
    expect(subscription).toMatchObject({
      status: "trialing",
      currentPeriodStart: T0.toISOString(),
      trialEnd: at(14).toISOString(),
    })

    expect(await advance(clock.id, at(13))).toEqual({ id: clock.id, frozenTime: at(13).toISOString() })
    expect((await state(subscription.id)).invoices).toEqual([])

    await advance(clock.id, at(14))
    let now = await state(subscription.id)
    expect(now.status).toBe("active")
    expect(now.invoices).toEqual([{ status: "paid", period_start: at(14), attempts: 1, reason: "subscription_cycle" }])
    // Monthly from the trial's end (Mar 15 12:00): Apr 15.
    expect(now.end.toISOString()).toBe("2026-04-15T12:00:00.000Z")

    await advance(clock.id, new Date("2026-04-15T12:00:00.000Z"))
    now = await state(subscription.id)
    expect(now.invoices.map((i) => i.status)).toEqual(["paid", "paid"])

    await savePaymentMethod(t, customer, "tok_declined")
    const may15 = new Date("2026-05-15T12:00:00.000Z")
    await advance(clock.id, may15)
    now = await state(subscription.id)
    expect(now.status).toBe("past_due")
    expect(now.invoices[2]).toMatchObject({ status: "open", attempts: 1 })

    await advance(clock.id, at(3, may15))
    now = await state(subscription.id)
    expect(now.status).toBe("past_due")
    expect(now.invoices[2]).toMatchObject({ status: "open", attempts: 3 })

    await advance(clock.id, at(5, may15))
    now = await state(subscription.id)
    expect(now.status).toBe("canceled")
    expect(now.invoices[2]).toMatchObject({ status: "uncollectible", attempts: 4 })
    // A canceled subscription renews no more.
    await advance(clock.id, new Date("2026-08-01T00:00:00.000Z"))
    expect((await state(subscription.id)).invoices).toHaveLength(3)

    const events = await eventsOf(t, subscription.id)
    expect(events.map((e) => e.data.sequence)).toEqual(events.map((_, i) => i + 1))
    expect(events.map((e) => e.type)).toEqual([
      "billing.subscription.created",
      "billing.subscription.renewed",
      "billing.invoice.finalized",
      "billing.invoice.paid",
      "billing.subscription.renewed",
      "billing.invoice.finalized",
      "billing.invoice.paid",
      "billing.subscription.renewed",
      "billing.invoice.finalized",
      "billing.invoice.payment_failed",
      "billing.subscription.past_due",
      "billing.invoice.payment_failed",
      "billing.invoice.payment_failed",
      "billing.invoice.payment_failed",
      "billing.subscription.canceled",
    ])
  })

  it("in one advance, in time order (the decline after two paid periods, each retry at its own time)", async () => {
    const clock = await newClock()
    const { customer, subscription } = await onClock(clock.id)
    const declinedPlan = await createPlan(t, { amount: 100, interval: "month" })
    // A second subscription on the clock from another customer whose card declines from the start.
    const other = randomUUID()
    await savePaymentMethod(t, other, "tok_insufficient_funds")
    const failing = await t.run(t.engine.subscribe({ customerId: other, planId: declinedPlan, testClockId: clock.id }))
    expect(failing.subscription.status).toBe("incomplete")
    await advance(clock.id, new Date("2026-07-01T00:00:00.000Z"))
    const now = await state(subscription.id)
    expect(now.status).toBe("active")
    // Trial end (Mar 15), Apr 15, May 15, Jun 15: four paid invoices.
    expect(now.invoices.map((i) => [i.status, i.period_start.toISOString().slice(0, 10)])).toEqual([
      ["paid", "2026-03-15"],
      ["paid", "2026-04-15"],
      ["paid", "2026-05-15"],
      ["paid", "2026-06-15"],
    ])
    expect(customer).toBeDefined()
    const first = await state(failing.subscription.id)
    // Incomplete from the start: never renewed; retried on days 1, 3, 5, then given up.
    expect(first.status).toBe("canceled")
    expect(first.invoices).toEqual([
      { status: "uncollectible", period_start: T0, attempts: 4, reason: "subscription_create" },
    ])
    const attempts = await t.q<{ decided_at: Date }>(
      `SELECT a.decided_at FROM $S.payment_attempts a JOIN $S.invoices i ON i.id = a.invoice_id
       WHERE i.subscription_id = $1 ORDER BY a.attempt`,
      [failing.subscription.id],
    )
    expect(attempts.map((a) => a.decided_at)).toEqual([T0, at(1), at(3), at(5)])
  })

  it("refuses to go back, too far, or on an unknown clock", async () => {
    const clock = await newClock()
    const refused = async (to: Date, id = clock.id) => {
      const exit = await advanceExit(id, to)
      return Exit.isFailure(exit) ? (Option.getOrThrow(Exit.findErrorOption(exit)) as { _tag: string }) : undefined
    }
    expect(await refused(T0)).toMatchObject({ _tag: "ValidationFailed", errors: [{ path: "to" }] })
    expect(await refused(at(-1))).toMatchObject({ _tag: "ValidationFailed" })
    expect(await refused(at(800))).toMatchObject({ _tag: "ValidationFailed" })
    expect(await refused(at(1), randomUUID())).toMatchObject({ _tag: "NotFound" })
  })
})

describe("the renewal job on wall time", () => {
  it("renews what is due on the wall's time and leaves subscriptions on clocks to their clock", async () => {
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 100, interval: "month" })
    await savePaymentMethod(t, customer, "tok_visa")
    const past = new Date(Date.now() - 40 * DAY)
    const wall = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: past }))
    const clock = await newClock(past)
    const onIt = await t.run(t.engine.subscribe({ customerId: customer, planId: plan, testClockId: clock.id }))
    const done = await t.run(Effect.provideService(drain(), Lifecycle, t.engine))
    expect(done.renewed).toBeGreaterThanOrEqual(1)
    expect((await state(wall.subscription.id)).invoices.map((i) => i.status)).toEqual(["paid", "paid"])
    expect((await state(wall.subscription.id)).end.getTime()).toBeGreaterThan(Date.now())
    expect((await state(onIt.subscription.id)).invoices).toHaveLength(1)
    // Nothing left: a second run does nothing for it.
    await t.run(drain())
    expect((await state(wall.subscription.id)).invoices).toHaveLength(2)
  })
})
