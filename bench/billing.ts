// Billing (issue 17): --subscriptions subscriptions (default 10,000) due at once, renewed and charged with the test
// provider by billing's engine (functions/billing/testing/renewProcess.ts: the engine draining what is due, batches
// claimed with FOR UPDATE SKIP LOCKED) in one process, then in two at once, each run in a fresh schema of the real
// Postgres of .env.test. Timed from the processes' start to the last one's exit (process start included), and each
// process's own drain time; then checked: one invoice per subscription and period, every one paid, no invoice
// charged twice in the test provider's ledger, numbers 1..N without a gap. Target: all of them within 60 s. Prints a
// table and, last, one JSON line; never asserts.
//   set -a; . ./.env.test; set +a; node bench/billing.ts [--subscriptions 10000] [--instances 1,2] [--batch 100]
//     [--concurrency 4] [--pool 8]
import { spawn } from "node:child_process"
import { join } from "node:path"
import { parseArgs } from "node:util"
import pg from "pg"
import { billingDb, billingDbOptions } from "../functions/billing/testing/engineDb.ts"
import { seedDue } from "../functions/billing/testing/engineSeed.ts"
import { start } from "../shared/testing/harness.ts"
import { measuredCommit, textTable } from "./lib.ts"

const { values } = parseArgs({
  options: {
    subscriptions: { type: "string", default: "10000" },
    instances: { type: "string", default: "1,2" },
    batch: { type: "string", default: "100" },
    concurrency: { type: "string", default: "4" },
    pool: { type: "string", default: "8" },
  },
})

const url = process.env.DATABASE_URL
if (!url) throw new Error("DATABASE_URL is not set: source .env.test (infra/up.sh starts the servers)")
const COUNT = Number(values.subscriptions)
const TARGET_S = 60
const PROCESS = join(import.meta.dirname, "..", "functions", "billing", "testing", "renewProcess.ts")

const renewer = (schema: string, now: Date) =>
  new Promise<{ renewed: number; retried: number; ms: number }>((resolve, reject) => {
    const child = spawn(process.execPath, [PROCESS], {
      env: {
        ...process.env,
        BILLING_RENEW_SCHEMA: schema,
        BILLING_RENEW_NOW: now.toISOString(),
        BILLING_RENEW_BATCH: values.batch,
        BILLING_RENEW_CONCURRENCY: values.concurrency,
        BILLING_RENEW_POOL: values.pool,
      },
      stdio: ["ignore", "pipe", "inherit"],
    })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("exit", (code) => {
      const last = output.trim().split("\n").at(-1) ?? ""
      if (code === 0) resolve(JSON.parse(last))
      else reject(new Error(`renewProcess exited with ${code}: ${output}`))
    })
  })

interface Outcome {
  readonly instances: number
  readonly seconds: number
  readonly drainSeconds: ReadonlyArray<number>
  readonly invoicesPerSecond: number
  readonly invoices: number
  readonly paid: number
  readonly duplicateInvoices: number
  readonly doubleCharged: number
  readonly gaplessNumbers: boolean
}

const runCase = async (instances: number): Promise<Outcome> => {
  const options = billingDbOptions(undefined, 4)
  const migrated = await start(billingDb(options))
  await migrated.close()
  const db = new pg.Client({ connectionString: url })
  await db.connect()
  const s = options.schema
  try {
    const now = new Date()
    await seedDue(s, COUNT, now)
    await db.query(`ANALYZE ${s}.subscriptions`)
    const started = performance.now()
    const runs = await Promise.all(Array.from({ length: instances }, () => renewer(s, now)))
    const seconds = (performance.now() - started) / 1000
    const n = async (sql: string) => Number((await db.query(sql)).rows[0].n)
    const numbers = (await db.query(`SELECT number FROM ${s}.invoices ORDER BY number`)).rows.map((r) => r.number)
    const year = now.getUTCFullYear()
    return {
      instances,
      seconds,
      drainSeconds: runs.map((r) => r.ms / 1000),
      invoicesPerSecond: COUNT / seconds,
      invoices: await n(`SELECT count(*) AS n FROM ${s}.invoices`),
      paid: await n(`SELECT count(*) AS n FROM ${s}.invoices WHERE status = 'paid'`),
      duplicateInvoices: await n(
        `SELECT count(*) AS n FROM (SELECT 1 FROM ${s}.invoices GROUP BY subscription_id, period_start HAVING count(*) > 1) d`,
      ),
      doubleCharged: await n(
        `SELECT count(*) AS n FROM (SELECT 1 FROM ${s}.test_provider_charges WHERE outcome = 'paid'
           GROUP BY split_part(idempotency_key, '-attempt-', 1) HAVING count(*) > 1) d`,
      ),
      gaplessNumbers:
        numbers.length === COUNT &&
        numbers.every((number, i) => number === `${year}-${String(i + 1).padStart(6, "0")}`),
    }
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => {})
    await db.end()
  }
}

const outcomes: Array<Outcome> = []
for (const instances of values.instances.split(",").map(Number)) {
  console.log(`${COUNT} subscriptions due, ${instances} instance(s) …`)
  outcomes.push(await runCase(instances))
}
console.log(
  textTable(
    [
      "instances",
      "time (s)",
      "drain per process (s)",
      "invoices/s",
      "invoices",
      "paid",
      "dup. invoices",
      "charged twice",
      "gapless",
      `≤ ${TARGET_S} s`,
    ],
    outcomes.map((o) => [
      String(o.instances),
      o.seconds.toFixed(1),
      o.drainSeconds.map((d) => d.toFixed(1)).join(", "),
      o.invoicesPerSecond.toFixed(0),
      String(o.invoices),
      String(o.paid),
      String(o.duplicateInvoices),
      String(o.doubleCharged),
      o.gaplessNumbers ? "yes" : "NO",
      o.seconds <= TARGET_S ? "yes" : "NO",
    ]),
  ),
)
const one = outcomes.find((o) => o.instances === 1)
const two = outcomes.find((o) => o.instances === 2)
if (one && two) console.log(`two instances / one: ${(one.seconds / two.seconds).toFixed(2)}x the throughput`)
console.log(
  JSON.stringify({
    bench: "billing",
    ...measuredCommit(["functions/billing", "bench/billing.ts"]),
    subscriptions: COUNT,
    targetSeconds: TARGET_S,
    outcomes,
  }),
)
