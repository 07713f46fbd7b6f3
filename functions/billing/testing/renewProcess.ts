// A billing process that only renews: billing's engine (Lifecycle with the test provider, its outbox and Notifier) on
// an already migrated schema, draining everything due by BILLING_RENEW_NOW (default: now) in batches of
// BILLING_RENEW_BATCH, then printing one JSON line {renewed, retried, ms} and exiting. For the two-process kill test
// (Renewals.kill.test.ts) and bench:billing, which run several of it at once and may kill one with SIGKILL.
//   DATABASE_URL=… BILLING_RENEW_SCHEMA=billing_x node functions/billing/testing/renewProcess.ts
import { Effect, Layer, Redacted } from "effect"
import { Db } from "../../../shared/Db.ts"
import { Notifier } from "../../../shared/Notifier.ts"
import { Outbox } from "../../../shared/Outbox.ts"
import { Lifecycle } from "../Lifecycle.ts"
import { manifest } from "../module.ts"
import { ReceiptRecipients } from "../Receipts.ts"
import { drain } from "../Renewals.ts"
import * as TestProvider from "../TestProvider.ts"

const env = process.env
const url = env.DATABASE_URL
const schema = env.BILLING_RENEW_SCHEMA
if (!url || !schema) throw new Error("renewProcess: DATABASE_URL and BILLING_RENEW_SCHEMA are required")
const poolMax = Number(env.BILLING_RENEW_POOL ?? "8")

const layer = Lifecycle.layer({
  retryScheduleDays: [1, 3, 5],
  chargeConcurrency: Number(env.BILLING_RENEW_CONCURRENCY ?? "4"),
}).pipe(
  Layer.provideMerge(
    Layer.mergeAll(TestProvider.layer, Outbox.layer(manifest), Notifier.layer, ReceiptRecipients.none),
  ),
  Layer.provideMerge(
    Db.layer({ url: Redacted.make(url), schema, poolMax, queryTimeoutMs: 30_000, acquireTimeoutMs: 60_000 }),
  ),
)

const started = performance.now()
const done = await Effect.runPromise(
  drain({
    ...(env.BILLING_RENEW_NOW ? { now: new Date(env.BILLING_RENEW_NOW) } : {}),
    limit: Number(env.BILLING_RENEW_BATCH ?? "100"),
  }).pipe(Effect.provide(layer)),
)
process.stdout.write(`${JSON.stringify({ ...done, ms: Math.round(performance.now() - started) })}\n`)
