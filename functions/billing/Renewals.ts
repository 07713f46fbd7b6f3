// Renewals and dunning as a job: every minute, the renewal sweep and then the dunning sweep on wall time, each in
// batches until nothing is due. Each tick runs once across the instances (the kernel's jobs); a run that outlasts its
// minute overlaps the next tick's on another instance, which is safe: batches are claimed with FOR UPDATE SKIP
// LOCKED and every write is guarded by the database (Lifecycle.ts). Subscriptions on test clocks are left to their
// clock's advance (TestClocks.ts).
import { Clock, Effect } from "effect"
import * as Jobs from "../../shared/Jobs.ts"
import { Lifecycle } from "./Lifecycle.ts"

/** The job's name in billing's app (App.ts `jobs`). */
export const RENEWALS_JOB = "billing-renewals"

/** Rows one batch claims: a transaction's worth of renewals, then their charges. */
export const BATCH = 100

/** What one run did. */
export interface Drained {
  readonly renewed: number
  readonly retried: number
}

/**
 * Renews everything due by `now` (default: the Clock's time when it starts), then retries every payment due, batch
 * after batch until a batch finds nothing. Safe to run on several instances at once.
 */
export const drain = (options: { readonly now?: Date; readonly clockId?: string; readonly limit?: number } = {}) =>
  Effect.gen(function* () {
    const engine = yield* Lifecycle
    const now = options.now ?? new Date(yield* Clock.currentTimeMillis)
    const sweep = {
      limit: options.limit ?? BATCH,
      ...(options.clockId === undefined ? {} : { clockId: options.clockId }),
    }
    let renewed = 0
    for (;;) {
      const { processed } = yield* engine.renewDue(now, sweep)
      if (processed === 0) break
      renewed += processed
    }
    let retried = 0
    for (;;) {
      const { processed } = yield* engine.retryDue(now, sweep)
      if (processed === 0) break
      retried += processed
    }
    if (renewed + retried > 0) yield* Effect.logInfo("billing: renewals and retries done", { renewed, retried })
    return { renewed, retried } satisfies Drained
  }).pipe(Effect.withSpan("Renewals.drain"))

/** Billing's jobs, for App.ts: `jobs: Renewals.jobs`. */
export const jobs = {
  [RENEWALS_JOB]: Jobs.cron("* * * * *", () => Effect.asVoid(drain()), { timeoutSeconds: 15 * 60 }),
}
