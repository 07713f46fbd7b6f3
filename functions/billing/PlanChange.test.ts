import { randomUUID } from "node:crypto"
import { Effect, Exit, Layer, ManagedRuntime, Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Permissions } from "../../shared/access/Permissions.ts"
import { Db } from "../../shared/Db.ts"
import { Idempotency } from "../../shared/Idempotency.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { manifest } from "./module.ts"
import { type PlanChangePreview, PlanChanges } from "./PlanChange.ts"
import { Reads } from "./Reads.ts"
import { billingDb, billingDbOptions } from "./testing/engineDb.ts"
import { asLine, pendingLinesSql } from "./testing/pendingLines.ts"

// Plan changes on the real Postgres: the preview and the change through the service, subscriptions living on test
// clocks so that the preview and the change see the same instant.

const ADMIN = randomUUID()
const READER = randomUUID()
const grants: Record<string, ReadonlyArray<string>> = {
  [ADMIN]: ["billing.subscription.update.any", "billing.subscription.read.any"],
  [READER]: ["billing.subscription.read.any"],
}

const layer = PlanChanges.layer.pipe(
  Layer.provideMerge(Layer.mergeAll(Outbox.layer(manifest), Idempotency.layer, Reads.layer)),
  Layer.provideMerge(
    Permissions.local((user, permission) => Effect.succeed(grants[user]?.includes(permission) ?? false)),
  ),
  Layer.provideMerge(billingDb(billingDbOptions())),
)
const runtime = ManagedRuntime.make(layer)
const run = <A, E>(effect: Effect.Effect<A, E, PlanChanges | Db | Permissions>) => runtime.runPromise(effect)
const exit = <A, E>(effect: Effect.Effect<A, E, PlanChanges | Db | Permissions>) => runtime.runPromiseExit(effect)
const sql = <A extends Record<string, unknown>>(text: string, params: ReadonlyArray<unknown> = []) =>
  run(Effect.flatMap(Effect.service(Db), (db) => db.query<A>(text.replaceAll("billing.", `${db.schema}.`), params)))

/** The problem a failed exit carries: its HTTP status and detail. */
const problemOf = (result: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(result)) return undefined
  const reason = result.cause.reasons.find((r) => r._tag === "Fail")
  const error = reason?._tag === "Fail" ? (reason.error as { _tag: string; detail?: string }) : undefined
  return error && { tag: error._tag, detail: error.detail }
}

const plans: Record<string, string> = {}
const plan = async (
  code: string,
  amount: number,
  options: { currency?: string; interval?: string; count?: number; active?: boolean } = {},
) => {
  const [row] = await sql<{ id: string }>(
    `INSERT INTO billing.plans (code, name, amount, currency, interval_unit, interval_count, active)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
    [
      code,
      code[0]?.toUpperCase() + code.slice(1),
      amount,
      options.currency ?? "EUR",
      options.interval ?? "month",
      options.count ?? 1,
      options.active ?? true,
    ],
  )
  plans[code] = row?.id ?? ""
}

/** A subscription on its own test clock frozen at `at`, in the period [start, end) of `planCode`. */
const subscription = async (
  planCode: string,
  options: { status?: string; start?: string; end?: string; at?: string; customer?: string } = {},
) => {
  const start = options.start ?? "2027-01-01T00:00:00Z"
  const [clock] = await sql<{ id: string }>(
    "INSERT INTO billing.test_clocks (frozen_time, created_by) VALUES ($1, $2) RETURNING id",
    [options.at ?? start, ADMIN],
  )
  const status = options.status ?? "active"
  const [row] = await sql<{ id: string }>(
    `INSERT INTO billing.subscriptions (customer_id, plan_id, status, current_period_start, current_period_end,
       trial_end, canceled_at, test_clock_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
    [
      options.customer ?? randomUUID(),
      plans[planCode],
      status,
      start,
      options.end ?? "2027-02-01T00:00:00Z",
      status === "trialing" ? (options.end ?? "2027-02-01T00:00:00Z") : null,
      status === "canceled" ? start : null,
      clock?.id,
    ],
  )
  return { id: row?.id ?? "", clockId: clock?.id ?? "", customer: options.customer }
}

const customerOf = async (id: string) =>
  (await sql<{ customer_id: string }>("SELECT customer_id FROM billing.subscriptions WHERE id = $1", [id]))[0]
    ?.customer_id ?? ""

const setClock = (clockId: string, at: string) =>
  sql("UPDATE billing.test_clocks SET frozen_time = $2 WHERE id = $1", [clockId, at])

const preview = (caller: string, id: string, planCode: string) =>
  run(
    Effect.flatMap(Effect.service(PlanChanges), (changes) => changes.preview(caller, id, plans[planCode] ?? planCode)),
  )
const change = (caller: string, id: string, planCode: string, key?: string) =>
  run(
    Effect.flatMap(Effect.service(PlanChanges), (changes) =>
      changes.change(caller, id, plans[planCode] ?? planCode, Option.fromNullishOr(key)),
    ),
  )

/** The subscription's pending lines as the API shows lines, oldest first. */
const pendingLines = async (id: string) => (await sql(pendingLinesSql("billing"), [id])).map(asLine)

const events = async (id: string) =>
  (
    await sql<{ event: { type: string; data: Record<string, unknown> } }>(
      "SELECT event FROM billing.outbox WHERE key = $1 ORDER BY seq",
      [id],
    )
  ).map((row) => row.event)

beforeAll(async () => {
  await plan("basic", 1000)
  await plan("pro", 3000)
  await plan("premium", 5000)
  await plan("threehalves", 4_017_600)
  await plan("two", 5_356_800)
  await plan("annual", 10_000, { interval: "year" })
  await plan("archived", 2000, { active: false })
  await plan("dollars", 2000, { currency: "USD" })
  await plan("lite", 980, { currency: "JPY" })
  await plan("plus", 1980, { currency: "JPY" })
})
afterAll(() => runtime.dispose())

describe("plan change: preview = change", () => {
  // [case, from, then [to, at] changes in order]: each change's preview must be what it writes as pending lines.
  it.each([
    ["upgrade", "basic", [["pro", "2027-01-16T00:00:00Z"]]],
    ["downgrade", "pro", [["basic", "2027-01-16T00:00:00Z"]]],
    [
      "same day, twice",
      "basic",
      [
        ["pro", "2027-01-16T10:00:00Z"],
        ["premium", "2027-01-16T15:00:00Z"],
      ],
    ],
    ["first second", "basic", [["pro", "2027-01-01T00:00:00Z"]]],
    ["last second", "threehalves", [["two", "2027-01-31T23:59:59Z"]]],
    ["JPY", "lite", [["plus", "2027-01-11T12:00:00Z"]]],
  ] as const)("%s", async (_, from, steps) => {
    const sub = await subscription(from)
    const customer = await customerOf(sub.id)
    const previews: Array<PlanChangePreview> = []
    for (const [to, at] of steps) {
      await setClock(sub.clockId, at)
      const previewed = await preview(customer, sub.id, to)
      const before = await pendingLines(sub.id)
      const made = await change(customer, sub.id, to)
      // What the change wrote is the preview, line for line, and what it answered too.
      expect((await pendingLines(sub.id)).slice(before.length)).toEqual(previewed.lines)
      expect({ lines: made.lines, total: made.total, currency: made.currency }).toEqual(previewed)
      expect(made.subscription.planId).toBe(plans[to])
      expect(made.invoiceId).toBeNull()
      previews.push(previewed)
    }
    // Every change is one event, in order, each with the next number of the subscription's sequence.
    const published = await events(sub.id)
    expect(published.map((event) => [event.type, event.data.sequence, event.data.toPlanId])).toEqual(
      steps.map(([to], i) => ["billing.subscription.plan_changed", i + 1, plans[to]]),
    )
    expect(published.map((event) => event.data.total)).toEqual(previews.map((p) => p.total))
    const [row] = await sql<{ seq: string; plan_id: string }>(
      "SELECT seq, plan_id FROM billing.subscriptions WHERE id = $1",
      [sub.id],
    )
    expect(Number(row?.seq)).toBe(steps.length)
  })

  it("credits the second change of a day against the plan the first moved to", async () => {
    const sub = await subscription("basic", { at: "2027-01-16T10:00:00Z" })
    const customer = await customerOf(sub.id)
    await change(customer, sub.id, "pro")
    await setClock(sub.clockId, "2027-01-16T15:00:00Z")
    await change(customer, sub.id, "premium")
    expect((await pendingLines(sub.id)).map((line) => [line.description, line.amount])).toEqual([
      ["Unused time on Basic after 2027-01-16T10:00:00Z", -503],
      ["Remaining time on Pro after 2027-01-16T10:00:00Z", 1508],
      ["Unused time on Pro after 2027-01-16T15:00:00Z", -1488],
      ["Remaining time on Premium after 2027-01-16T15:00:00Z", 2480],
    ])
    // Changed and changed back in the same second: nothing owed for it.
    await setClock(sub.clockId, "2027-01-20T00:00:00Z")
    const there = await change(customer, sub.id, "basic")
    const back = await change(customer, sub.id, "premium")
    expect(there.total + back.total).toBe(0)
  })

  it("resets the cycle on another interval: an invoice now with the lines previewed and those pending", async () => {
    const sub = await subscription("basic", { at: "2027-01-10T00:00:00Z" })
    const customer = await customerOf(sub.id)
    await change(customer, sub.id, "pro")
    const pending = await pendingLines(sub.id)
    expect(pending.map((line) => line.amount)).toEqual([-710, 2129])
    await setClock(sub.clockId, "2027-01-16T00:00:00Z")
    const previewed = await preview(customer, sub.id, "annual")
    expect(previewed.lines.map((line) => [line.description, line.amount])).toEqual([
      ["Unused time on Pro after 2027-01-16T00:00:00Z", -1548],
      ["Annual from 2027-01-16T00:00:00Z to 2028-01-16T00:00:00Z", 10_000],
    ])
    const made = await change(customer, sub.id, "annual")
    expect(made.subscription).toMatchObject({
      planId: plans.annual,
      currentPeriodStart: "2027-01-16T00:00:00.000Z",
      currentPeriodEnd: "2028-01-16T00:00:00.000Z",
    })
    const [invoice] = await sql<{
      id: string
      number: string
      status: string
      lines: ReadonlyArray<unknown>
      total: string
      amount_due: string
      next_attempt_at: Date
      period_start: Date
    }>("SELECT * FROM billing.invoices WHERE subscription_id = $1", [sub.id])
    expect(invoice?.id).toBe(made.invoiceId)
    expect(invoice?.number).toMatch(/^2027-\d{6}$/)
    expect(invoice?.status).toBe("open")
    expect(invoice?.lines).toEqual([...pending, ...previewed.lines])
    const total = [...pending, ...previewed.lines].reduce((s, line) => s + line.amount, 0)
    expect(Number(invoice?.total)).toBe(total)
    expect(Number(invoice?.amount_due)).toBe(total)
    // Collected by the dunning sweep at once.
    expect(invoice?.next_attempt_at.toISOString()).toBe("2027-01-16T00:00:00.000Z")
    expect(await pendingLines(sub.id)).toEqual([])
    const [anchor] = await sql<{ billing_anchor: Date }>(
      "SELECT billing_anchor FROM billing.subscriptions WHERE id = $1",
      [sub.id],
    )
    expect(anchor?.billing_anchor.toISOString()).toBe("2027-01-16T00:00:00.000Z")
    expect((await events(sub.id)).map((event) => [event.type, event.data.sequence])).toEqual([
      ["billing.subscription.plan_changed", 1],
      ["billing.subscription.plan_changed", 2],
      ["billing.invoice.finalized", 3],
    ])
    // Back to monthly the next day: the year's unused part exceeds a month, the rest is credit for later.
    await setClock(sub.clockId, "2027-01-17T00:00:00Z")
    const down = await change(customer, sub.id, "basic")
    expect(down.total).toBeLessThan(0)
    const [second] = await sql<{ total: string; subtotal: string; status: string }>(
      "SELECT total, subtotal, status FROM billing.invoices WHERE id = $1",
      [down.invoiceId],
    )
    // Open with nothing due: the engine's collect marks it paid without the provider.
    expect(second).toMatchObject({ status: "open" })
    expect(Number(second?.total)).toBe(0)
    expect(Number(second?.subtotal)).toBe(down.total)
    expect(await pendingLines(sub.id)).toEqual([
      expect.objectContaining({ amount: down.total, description: expect.stringMatching(/^Credit carried over/) }),
    ])
  })

  it("swaps the plan of a trial without proration", async () => {
    const sub = await subscription("basic", { status: "trialing", at: "2027-01-10T00:00:00Z" })
    const customer = await customerOf(sub.id)
    expect(await preview(customer, sub.id, "annual")).toEqual({ lines: [], total: 0, currency: "EUR" })
    const made = await change(customer, sub.id, "annual")
    expect(made.subscription).toMatchObject({ planId: plans.annual, currentPeriodEnd: "2027-02-01T00:00:00.000Z" })
    expect(await pendingLines(sub.id)).toEqual([])
  })
})

describe("plan change: refusals", () => {
  it.each([
    ["a canceled subscription", { status: "canceled" }, "pro", "Conflict", /canceled/],
    ["an incomplete subscription", { status: "incomplete" }, "pro", "Conflict", /first invoice/],
    ["the plan it is on", {}, "basic", "Conflict", /already/],
    ["an archived plan", {}, "archived", "Conflict", /archived/],
    ["another currency", {}, "dollars", "Conflict", /USD/],
    ["an unknown plan", {}, randomUUID(), "NotFound", /no plan/],
    ["another interval at the period's first instant", {}, "annual", "Conflict", /very start/],
    ["a period already over", { at: "2027-02-01T00:00:00Z" }, "pro", "Conflict", /renewal is due/],
  ] as const)("refuses %s", async (_, options, to, tag, detail) => {
    const sub = await subscription("basic", options)
    const customer = await customerOf(sub.id)
    for (const attempt of [
      (changes: PlanChanges["Service"]) => changes.preview(customer, sub.id, plans[to] ?? to),
      (changes: PlanChanges["Service"]) => changes.change(customer, sub.id, plans[to] ?? to, Option.none()),
    ]) {
      const problem = problemOf(await exit(Effect.flatMap(Effect.service(PlanChanges), attempt)))
      expect(problem?.tag).toBe(tag)
      expect(problem?.detail).toMatch(detail)
    }
    expect(await pendingLines(sub.id)).toEqual([])
    expect(await events(sub.id)).toEqual([])
  })

  it("lets the customer or update.any change; read.any sees a 403, anyone else a 404", async () => {
    const sub = await subscription("basic", { at: "2027-01-16T00:00:00Z" })
    const attempt = (caller: string) =>
      exit(
        Effect.flatMap(Effect.service(PlanChanges), (changes) =>
          changes.change(caller, sub.id, plans.pro ?? "", Option.none()),
        ),
      )
    expect(problemOf(await attempt(randomUUID()))?.tag).toBe("NotFound")
    expect(problemOf(await attempt(READER))?.tag).toBe("Forbidden")
    expect(
      problemOf(
        await exit(Effect.flatMap(Effect.service(PlanChanges), (c) => c.preview(READER, sub.id, plans.pro ?? ""))),
      ),
    ).toMatchObject({ tag: "Forbidden" })
    expect(Exit.isSuccess(await attempt(ADMIN))).toBe(true)
    expect(problemOf(await attempt(randomUUID()))?.tag).toBe("NotFound")
    expect(
      problemOf(
        await exit(Effect.flatMap(Effect.service(PlanChanges), (c) => c.preview(ADMIN, randomUUID(), plans.pro ?? ""))),
      ),
    ).toMatchObject({ tag: "NotFound" })
  })

  it("makes a change once per Idempotency-Key: a repeat replays it, another plan under the key is a 422", async () => {
    const sub = await subscription("basic", { at: "2027-01-16T00:00:00Z" })
    const customer = await customerOf(sub.id)
    const first = await change(customer, sub.id, "pro", "key-1")
    const again = await change(customer, sub.id, "pro", "key-1")
    expect(again).toEqual(first)
    expect(await pendingLines(sub.id)).toHaveLength(2)
    expect(await events(sub.id)).toHaveLength(1)
    const reused = await exit(
      Effect.flatMap(Effect.service(PlanChanges), (c) =>
        c.change(customer, sub.id, plans.premium ?? "", Option.some("key-1")),
      ),
    )
    expect(problemOf(reused)?.tag).toBe("IdempotencyKeyReused")
  })

  it("serialises concurrent changes of one subscription: each credits the plan the previous one left", async () => {
    const sub = await subscription("basic", { at: "2027-01-16T00:00:00Z" })
    const customer = await customerOf(sub.id)
    const results = await Promise.allSettled([change(customer, sub.id, "pro"), change(customer, sub.id, "premium")])
    const made = results.filter((r) => r.status === "fulfilled")
    // Both may succeed (one after the other, the second crediting the first's plan) or the second may find it is
    // on that plan already; never two credits of Basic.
    const lines = await pendingLines(sub.id)
    expect(lines.filter((line) => line.description.startsWith("Unused time on Basic"))).toHaveLength(1)
    expect(made.length).toBeGreaterThanOrEqual(1)
  })
})
