// The proof: two billing processes renew the same 1,000 due subscriptions at once and one is killed with
// SIGKILL mid-run (no shutdown: its transactions cut, its charges possibly made without their outcome recorded). The
// survivor finishes; a restart after the dead one's attempt lease charges what it left. Then: 1,000 invoices, one per
// subscription and period, every one paid, each charged at most once (the test provider's ledger counted by invoice),
// numbers 1..1,000 without a gap.
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { drain } from "./Renewals.ts"
import { type EngineUnderTest, startEngine } from "./testing/engineHarness.ts"
import { seedDue } from "./testing/engineSeed.ts"

const COUNT = 1_000
const LEASE_MS = 10 * 60_000

let t: EngineUnderTest
const children: Array<ChildProcess> = []
beforeAll(async () => {
  t = await startEngine()
}, 60_000)
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL")
  await t?.close()
})

const renewer = (now: Date) => {
  const child = spawn(process.execPath, [join(import.meta.dirname, "testing", "renewProcess.ts")], {
    env: {
      ...process.env,
      BILLING_RENEW_SCHEMA: t.schema,
      BILLING_RENEW_NOW: now.toISOString(),
      // Small batches: many transactions, so the kill lands between and inside them.
      BILLING_RENEW_BATCH: "20",
      BILLING_RENEW_POOL: "6",
    },
    stdio: ["ignore", "pipe", "inherit"],
  })
  children.push(child)
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, output })),
  )
  return { child, exited }
}

const count = async (query: string) => Number((await sql(query.replaceAll("$S.", `${t.schema}.`)))[0]!.n)

describe("two billing processes, one killed with SIGKILL mid-run", () => {
  it("1,000 due subscriptions: 1,000 invoices, each paid exactly once, numbers without a gap", async () => {
    const now = new Date()
    await seedDue(t.schema, COUNT, now)
    const survivor = renewer(now)
    const victim = renewer(now)
    // Killed once both are well into the work.
    const deadline = Date.now() + 120_000
    let atKill = 0
    for (;;) {
      atKill = await count(`SELECT count(*) AS n FROM $S.invoices`)
      if (atKill >= 150 || Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    victim.child.kill("SIGKILL")
    const killed = await victim.exited
    expect(killed.signal).toBe("SIGKILL")
    expect(atKill).toBeLessThan(COUNT)
    const finished = await survivor.exited
    expect(finished.code).toBe(0)

    // What the dead one left: invoices made but not charged, attempts without an outcome. A restart after its lease
    // (the dunning sweep) charges them, repeating an undecided attempt under its own key.
    const left = await count(`SELECT count(*) AS n FROM $S.invoices WHERE status = 'open'`)
    const undecided = await count(`SELECT count(*) AS n FROM $S.payment_attempts WHERE outcome IS NULL`)
    await t.run(Effect.provideService(drain({ now: new Date(now.getTime() + LEASE_MS + 1_000) }), Lifecycle, t.engine))

    expect(await count(`SELECT count(*) AS n FROM $S.invoices`)).toBe(COUNT)
    expect(await count(`SELECT count(DISTINCT (subscription_id, period_start)) AS n FROM $S.invoices`)).toBe(COUNT)
    expect(await count(`SELECT count(*) AS n FROM $S.invoices WHERE status = 'paid'`)).toBe(COUNT)
    // Each invoice charged at most once: the ledger's paid charges, by invoice.
    const perInvoice = await sql(
      `SELECT split_part(idempotency_key, '-attempt-', 1) AS invoice, count(*) AS n
       FROM ${t.schema}.test_provider_charges WHERE outcome = 'paid' GROUP BY 1 HAVING count(*) > 1`,
    )
    expect(perInvoice).toEqual([])
    expect(await count(`SELECT count(*) AS n FROM $S.test_provider_charges WHERE outcome = 'paid'`)).toBe(COUNT)
    expect(await count(`SELECT count(*) AS n FROM $S.payment_attempts WHERE outcome IS NULL`)).toBe(0)
    expect(await count(`SELECT count(*) AS n FROM $S.payment_attempts WHERE attempt > 1`)).toBe(0)
    const numbers = await sql(`SELECT number FROM ${t.schema}.invoices ORDER BY number`)
    expect(numbers.map((row) => row.number)).toEqual(
      Array.from({ length: COUNT }, (_, i) => `${now.getUTCFullYear()}-${String(i + 1).padStart(6, "0")}`),
    )
    // Every subscription advanced exactly one period.
    expect(await count(`SELECT count(*) AS n FROM $S.subscriptions WHERE current_period_end <= now()`)).toBe(0)
    console.log(
      `kill test: killed at ${atKill} invoices; survivor ${finished.output.trim().split("\n").at(-1)}; left ${left} open, ${undecided} undecided attempts`,
    )
  }, 180_000)
})
