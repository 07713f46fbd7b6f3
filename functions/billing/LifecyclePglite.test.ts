// Billing's engine on the embedded PGlite server of `npm start` (one session shared by every connection): a
// subscription with a trial on a test clock through its first invoice, a renewal, a decline and dunning to the end,
// and the wall-time sweep, as on the real Postgres (Lifecycle.test.ts, TestClocks.test.ts).
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startEmbeddedPostgres } from "../../infra/embedded/postgres.ts"
import { type Running, start } from "../../shared/testing/harness.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { drain } from "./Renewals.ts"
import { TestClocks } from "./TestClocks.ts"
import { billingDbOptions } from "./testing/engineDb.ts"
import { createPlan, type EngineUnderTest, savePaymentMethod, startEngine } from "./testing/engineHarness.ts"

const DAY = 86_400_000
const T0 = new Date("2026-03-01T12:00:00.000Z")

describe("billing's engine on the embedded PGlite server", () => {
  const dir = mkdtempSync(join(tmpdir(), "billing-engine-pglite-"))
  let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined
  let t: EngineUnderTest
  let clocks: Running<TestClocks>
  beforeAll(async () => {
    embedded = await startEmbeddedPostgres(join(dir, "data"), await freePort())
    t = await startEngine({ db: billingDbOptions(embedded.url) })
    clocks = await start(TestClocks.layer.pipe(Layer.provide(Layer.succeedContext(t.running.context))))
  }, 60_000)
  afterAll(async () => {
    await clocks?.close()
    await t?.close()
    await embedded?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const clockService = () => Effect.runPromise(Effect.provideContext(Effect.service(TestClocks), clocks.context))

  it("trial → first invoice → renewal → declined → retries → canceled on a test clock", async () => {
    const service = await clockService()
    const clock = await Effect.runPromise(service.create(randomUUID(), T0))
    const customer = randomUUID()
    const plan = await createPlan(t, { amount: 2500, interval: "month", trialDays: 14 })
    await savePaymentMethod(t, customer, "tok_visa")
    const { subscription } = await t.run(
      t.engine.subscribe({ customerId: customer, planId: plan, testClockId: clock.id }),
    )
    expect(subscription.status).toBe("trialing")
    await Effect.runPromise(service.advance(clock.id, new Date("2026-04-15T12:00:00.000Z")))
    await savePaymentMethod(t, customer, "tok_declined")
    await Effect.runPromise(service.advance(clock.id, new Date("2026-05-25T00:00:00.000Z")))
    const invoices = await t.q<{ status: string; attempts: number; number: string }>(
      `SELECT status, attempts, number FROM $S.invoices WHERE subscription_id = $1 ORDER BY period_start`,
      [subscription.id],
    )
    expect(invoices.map((i) => [i.status, i.attempts])).toEqual([
      ["paid", 1],
      ["paid", 1],
      ["uncollectible", 4],
    ])
    expect(invoices.map((i) => i.number)).toEqual(["2026-000001", "2026-000002", "2026-000003"])
    const [row] = await t.q<{ status: string }>(`SELECT status FROM $S.subscriptions WHERE id = $1`, [subscription.id])
    expect(row!.status).toBe("canceled")
  })

  it("renews what is due on wall time, concurrently with a second sweep, once", async () => {
    const plan = await createPlan(t, { amount: 100, interval: "month" })
    const past = new Date(Date.now() - 40 * DAY)
    const ids: Array<string> = []
    for (let i = 0; i < 5; i++) {
      const customer = randomUUID()
      await savePaymentMethod(t, customer, "tok_visa")
      ids.push((await t.run(t.engine.subscribe({ customerId: customer, planId: plan, now: past }))).subscription.id)
    }
    await Promise.all([
      t.run(drain({ limit: 2 })),
      t.run(Effect.provideService(drain({ limit: 3 }), Lifecycle, t.engine)),
    ])
    const counts = await t.q<{ n: string }>(
      `SELECT count(*) AS n FROM $S.invoices WHERE subscription_id = ANY($1::uuid[]) AND status = 'paid' GROUP BY subscription_id`,
      [ids],
    )
    expect(counts.map((c) => Number(c.n))).toEqual([2, 2, 2, 2, 2])
  })
})
