import { Clock, Context, Effect, Layer, Option, Schema } from "effect"
import type { Permissions } from "../../shared/access/Permissions.ts"
import { Db } from "../../shared/Db.ts"
import { Idempotency } from "../../shared/Idempotency.ts"
import { Outbox } from "../../shared/Outbox.ts"
import {
  Conflict,
  type Forbidden,
  type IdempotencyKeyReused,
  NotFound,
  type ServiceUnavailable,
  type ValidationFailed,
} from "../../shared/Problem.ts"
import * as Invoices from "./Invoices.ts"
import { Lifecycle } from "./Lifecycle.ts"
import {
  Id,
  Line,
  type Plan,
  type PlanRow,
  Subscription,
  type SubscriptionRow,
  type SubscriptionStatus,
  toPlan,
  toSubscription,
  unavailable,
} from "./Model.ts"
import { Currency, MoneyOverflow, overflowProblem } from "./Money.ts"
import type { Period } from "./Periods.ts"
import { prorate, sameInterval } from "./Proration.ts"
import { Reads } from "./Reads.ts"

// A plan change, previewed or made: ONE function (`planChange`) decides what it costs, from the subscription, the two
// plans and the time; the preview returns its answer and the change writes exactly that answer, in one transaction
// with the subscription locked. So a preview is what the change charges, as long as nothing moved in between (the
// subscription's plan or period, or the time: a preview a few seconds before the change prorates a few seconds more).
//
// Where a change's lines go:
// - same interval (the common case): to pending_lines, which the subscription's next invoice takes (migration 0101);
// - another interval: the billing cycle resets (Proration.ts), so the new period starts now and is invoiced now, as
//   Stripe does: an invoice for [at, new end) with the change's lines and any pending ones, finalized (numbered) in
//   the same transaction, charged by the engine right after the commit (due from `at`, so the dunning sweep charges
//   it if that attempt never ran); a credit larger than the charges goes back to pending_lines for the invoice after.
//   Otherwise a customer moving to a yearly plan would use the year before paying for it (and could cancel at its end
//   never having paid).
// - while trialing nothing was paid, so nothing is prorated: the plan is swapped and the trial goes on; its end
//   invoices the new plan.
// Time is the subscription's: its test clock's frozen time when it has one, else the wall clock.

/** What a caller sends to change plans. */
export const PlanChangeRequest = Schema.Struct({ planId: Id })
export type PlanChangeRequest = typeof PlanChangeRequest.Type

/** What a change now would charge (positive) or credit (negative), line by line. */
export const PlanChangePreview = Schema.Struct({
  lines: Schema.Array(Line),
  total: Schema.Number,
  currency: Currency,
})
export type PlanChangePreview = typeof PlanChangePreview.Type

/** A change made: the subscription as it is now, the lines written, and the invoice made now when the cycle reset. */
export const PlanChangeResult = Schema.Struct({
  subscription: Subscription,
  lines: Schema.Array(Line),
  total: Schema.Number,
  currency: Currency,
  invoiceId: Schema.NullOr(Schema.String),
})
export type PlanChangeResult = typeof PlanChangeResult.Type

/** What a change at `at` costs: `planChange`'s answer. */
export interface PlanChangeOutcome extends PlanChangePreview {
  /** The period starting at `at` when the billing cycle resets (another interval), else null. */
  readonly newPeriod: Period | null
}

/** What `planChange` needs of a subscription. */
export interface SubscriptionState {
  readonly status: SubscriptionStatus
  readonly currentPeriodStart: Date
  readonly currentPeriodEnd: Date
}

const toLine = (line: {
  readonly description: string
  readonly amount: number
  readonly quantity: number
  readonly periodStart: Date
  readonly periodEnd: Date
}): Line => ({
  description: line.description,
  amount: line.amount,
  quantity: line.quantity,
  periodStart: line.periodStart.toISOString(),
  periodEnd: line.periodEnd.toISOString(),
})

/**
 * THE decision of a plan change, shared by the preview and the change: whether the subscription may move from
 * `fromPlan` to `toPlan` at `at`, and the lines it makes (Proration.ts). A refusal is a 409 naming why; an amount
 * beyond the exact range a 400 naming `planId`.
 */
export const planChange = (
  subscription: SubscriptionState,
  fromPlan: Plan,
  toPlan: Plan,
  at: Date,
): Effect.Effect<PlanChangeOutcome, Conflict | ValidationFailed> =>
  Effect.gen(function* () {
    const refuse = (detail: string) => Effect.fail(new Conflict({ detail }))
    if (subscription.status === "canceled") return yield* refuse("the subscription is canceled")
    if (subscription.status === "incomplete") {
      return yield* refuse("the subscription's first invoice is not paid yet: pay it, then change plans")
    }
    if (toPlan.id === fromPlan.id) return yield* refuse(`the subscription is on plan ${toPlan.id} already`)
    if (!toPlan.active) return yield* refuse(`plan ${toPlan.id} is archived: it takes no new subscribers`)
    if (toPlan.currency !== fromPlan.currency) {
      return yield* refuse(
        `plan ${toPlan.id} is priced in ${toPlan.currency}, the subscription in ${fromPlan.currency}: a subscription keeps its currency`,
      )
    }
    const period = { start: subscription.currentPeriodStart, end: subscription.currentPeriodEnd }
    if (at.getTime() >= period.end.getTime()) {
      return yield* refuse("the subscription's period has ended and its renewal is due: retry once it is renewed")
    }
    if (at.getTime() < period.start.getTime()) return yield* refuse("the change's time is before the current period")
    if (subscription.status === "trialing") {
      return { lines: [], total: 0, currency: toPlan.currency, newPeriod: null }
    }
    // A reset starts a period, and so an invoice, at `at`: one already starts there (a change in the period's very first
    // instant, as on a test clock not yet advanced), and a subscription has one invoice per period start.
    if (!sameInterval(fromPlan, toPlan) && at.getTime() === period.start.getTime()) {
      return yield* refuse(
        "a change to another billing interval at the very start of a period: its invoice is being made, retry a second later",
      )
    }
    const proration = yield* prorate({ period, from: fromPlan, to: toPlan, at }).pipe(
      Effect.catchTags({
        MoneyOverflow: (error: MoneyOverflow) => Effect.fail(overflowProblem(error)),
        // Both checked above; kept as a conflict rather than a defect.
        CurrencyMismatch: () => refuse("the plans' currencies differ"),
        OutsidePeriod: () => refuse("the change's time is outside the current period"),
      }),
    )
    return {
      lines: proration.lines.map(toLine),
      total: proration.total,
      currency: proration.currency,
      newPeriod: proration.newPeriod,
    }
  })

type StoredSubscription = SubscriptionRow & { readonly billing_anchor: Date; readonly [column: string]: unknown }
type StoredPlan = PlanRow & { readonly [column: string]: unknown }

/** Who may change a subscription's plan: its customer, or a holder of this permission. */
export const UPDATE_ANY = "billing.subscription.update.any"

type Failure = NotFound | Forbidden | Conflict | ValidationFailed | ServiceUnavailable

/** Plan changes of subscriptions: previewed, and made as previewed. */
export class PlanChanges extends Context.Service<
  PlanChanges,
  {
    /** What changing `subscriptionId` to `planId` now would charge or credit; nothing is written. */
    preview(
      callerId: string,
      subscriptionId: string,
      planId: string,
    ): Effect.Effect<PlanChangePreview, Failure, Permissions>
    /**
     * Changes the plan now: the lines to pending_lines (or, on a cycle reset, an invoice now), the plan (and the period
     * on a reset), the subscription's sequence, and `billing.subscription.plan_changed`, in one transaction, with the
     * answer kept under the caller's `Idempotency-Key` (`key`) when there is one.
     */
    change(
      callerId: string,
      subscriptionId: string,
      planId: string,
      key: Option.Option<string>,
    ): Effect.Effect<PlanChangeResult, Failure | IdempotencyKeyReused, Permissions>
  }
>()("billing/PlanChanges") {
  /** Plan changes over billing's tables; events through the outbox. */
  static readonly layer = Layer.effect(
    PlanChanges,
    Effect.gen(function* () {
      const db = yield* Db
      const outbox = yield* Outbox
      const t = (table: string) => `${db.schema}.${table}`

      const idempotency = yield* Idempotency
      // The engine, when the app has it: a reset's invoice is charged right after the change commits (else, and if
      // that fails, the dunning sweep charges it: it is due from the change's time).
      const engine = yield* Effect.serviceOption(Lifecycle)

      const subscriptionById = (id: string, lock: boolean) =>
        Effect.map(
          db.query<StoredSubscription>(
            `SELECT * FROM ${t("subscriptions")} WHERE id = $1${lock ? " FOR UPDATE" : ""}`,
            [id],
          ),
          (rows) => rows[0],
        )

      const planById = (id: string) =>
        Effect.map(db.query<StoredPlan>(`SELECT * FROM ${t("plans")} WHERE id = $1`, [id]), (rows) =>
          rows[0] === undefined ? undefined : toPlan(rows[0]),
        )

      // The subscription's time: its test clock's frozen time, else the wall clock.
      const timeOf = (subscription: StoredSubscription) =>
        subscription.test_clock_id === null
          ? Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))
          : Effect.map(
              db.query<{ frozen_time: Date }>(`SELECT frozen_time FROM ${t("test_clocks")} WHERE id = $1`, [
                subscription.test_clock_id,
              ]),
              (rows) => rows[0]?.frozen_time ?? new Date(Number.NaN),
            )

      // The caller may change the subscription (own, or update.any): 404 when they may not even see it, 403 when
      // they may only read it (Reads' ownership rule). Asked before any transaction (a remote call never holds one open).
      const reads = yield* Reads
      const authorize = (callerId: string, subscriptionId: string) =>
        reads.authorize("subscription", callerId, subscriptionId, UPDATE_ANY)

      // The subscription (locked when changing), both plans and the time, then THE decision.
      const decide = (subscriptionId: string, planId: string, lock: boolean) =>
        Effect.gen(function* () {
          const row = yield* subscriptionById(subscriptionId, lock)
          if (row === undefined) return yield* new NotFound({ detail: `no subscription ${subscriptionId}` })
          const toPlan = yield* planById(planId)
          if (toPlan === undefined) return yield* new NotFound({ detail: `no plan ${planId}` })
          const fromPlan = yield* planById(row.plan_id)
          if (fromPlan === undefined) return yield* Effect.die(new Error(`subscription ${row.id} has no plan`))
          const at = yield* timeOf(row)
          const state = {
            status: row.status,
            currentPeriodStart: row.current_period_start,
            currentPeriodEnd: row.current_period_end,
          }
          const outcome = yield* planChange(state, fromPlan, toPlan, at)
          return { row, fromPlan, toPlan, at, outcome }
        })

      const preview = Effect.fn("PlanChanges.preview")(function* (
        callerId: string,
        subscriptionId: string,
        planId: string,
      ) {
        yield* authorize(callerId, subscriptionId)
        const { outcome } = yield* decide(subscriptionId, planId, false).pipe(Effect.catchTag("DbError", unavailable))
        return { lines: outcome.lines, total: outcome.total, currency: outcome.currency }
      })

      // The invoice of a reset cycle, made now: the change's lines and the pending ones, numbered in this
      // transaction (gapless: a rollback returns the number); a net credit goes back to pending_lines.
      const invoiceNow = (
        row: StoredSubscription,
        outcome: PlanChangeOutcome & { readonly newPeriod: Period },
        at: Date,
      ) =>
        Effect.gen(function* () {
          // Oldest first, as the engine's renewal reads them (a change's credit before its charge); a net credit goes
          // on to the next invoice, as the engine's invoices do (Invoices.ts).
          const pending = yield* Invoices.pendingLines(db, row.id)
          const draft = yield* Invoices.insertDraft(db, {
            subscriptionId: row.id,
            customerId: row.customer_id,
            reason: "subscription_cycle",
            currency: outcome.currency,
            lines: [...pending.lines, ...outcome.lines],
            period: outcome.newPeriod,
            pending: pending.ids,
            // Due for payment now (the engine's collect; a total of 0 it marks paid without the provider), and made
            // at the subscription's time (its test clock's), as the engine's invoices are.
            nextAttemptAt: at,
            now: at,
          }).pipe(
            Effect.catchTag("MoneyOverflow", () =>
              Effect.fail(overflowProblem(new MoneyOverflow({ field: "planId" }))),
            ),
          )
          if (draft === undefined) {
            return yield* new Conflict({ detail: "an invoice starts at this instant already: retry a second later" })
          }
          const [invoice] = yield* Invoices.finalize(db, [draft.id], at)
          const total = Number(invoice!.total)
          return {
            invoiceId: draft.id,
            number: invoice!.number!,
            total,
            amountDue: total,
            currency: outcome.currency,
            periodStart: outcome.newPeriod.start.toISOString(),
            periodEnd: outcome.newPeriod.end.toISOString(),
          }
        })

      // The first payment attempt of a reset's invoice, outside the change's transaction (the provider is remote). Only
      // while none was made: a replayed change must not add attempts beside the dunning schedule. Its failures are the
      // dunning's to handle; the change stands.
      const chargeNow = (lifecycle: Lifecycle["Service"], invoiceId: string) =>
        Effect.gen(function* () {
          const [invoice] = yield* db.query<{ attempts: number; status: string }>(
            `SELECT attempts, status FROM ${t("invoices")} WHERE id = $1`,
            [invoiceId],
          )
          if (invoice?.status !== "open" || invoice.attempts > 0) return
          yield* lifecycle.collect(invoiceId)
        }).pipe(
          Effect.catch((error) =>
            Effect.logWarning("plan change: the reset invoice's payment is left to the dunning sweep", {
              invoiceId,
              error: String(error),
            }),
          ),
        )

      const change = Effect.fn("PlanChanges.change")(function* (
        callerId: string,
        subscriptionId: string,
        planId: string,
        key: Option.Option<string>,
      ) {
        yield* authorize(callerId, subscriptionId)
        const request = {
          caller: callerId,
          key,
          request: { route: "subscriptions.changePlan", subscriptionId, planId },
        }
        const result = yield* idempotency
          .once(
            request,
            PlanChangeResult,
            db.transaction(
              Effect.gen(function* () {
                const { row, fromPlan, toPlan, at, outcome } = yield* decide(subscriptionId, planId, true)
                const reset = outcome.newPeriod
                let invoice: Effect.Success<ReturnType<typeof invoiceNow>> | undefined
                if (reset !== null) {
                  invoice = yield* invoiceNow(row, { ...outcome, newPeriod: reset }, at)
                } else if (outcome.lines.length > 0) {
                  yield* db.query(
                    // Each line a microsecond after the one before: read back in created_at order (the next invoice's
                    // order), a change's credit comes before its charge.
                    `INSERT INTO ${t("pending_lines")} (subscription_id, description, amount, currency, quantity,
                       period_start, period_end, created_at)
                     SELECT $1, l.description, l.amount, $2, l.quantity, l.period_start, l.period_end,
                       now() + make_interval(secs => l.n / 1e6)
                     FROM jsonb_to_recordset($3::jsonb)
                       AS l(n integer, description text, amount bigint, quantity integer, period_start timestamptz,
                            period_end timestamptz)`,
                    [
                      row.id,
                      outcome.currency,
                      JSON.stringify(
                        outcome.lines.map((line, i) => ({
                          n: i + 1,
                          description: line.description,
                          amount: line.amount,
                          quantity: line.quantity,
                          period_start: line.periodStart,
                          period_end: line.periodEnd,
                        })),
                      ),
                    ],
                  )
                }
                // One event per fact, each with the next number of the subscription's sequence.
                const events = invoice === undefined ? 1 : 2
                const [updated] = yield* db.query<StoredSubscription>(
                  `UPDATE ${t("subscriptions")} SET plan_id = $2, seq = seq + $3,
                   current_period_start = COALESCE($4, current_period_start),
                   current_period_end = COALESCE($5, current_period_end),
                   billing_anchor = COALESCE($4, billing_anchor)
                 WHERE id = $1 RETURNING *`,
                  [row.id, toPlan.id, events, reset?.start ?? null, reset?.end ?? null],
                )
                if (updated === undefined) return yield* Effect.die(new Error(`subscription ${row.id} vanished`))
                const first = Number(updated.seq) - events + 1
                yield* outbox.publish({
                  type: "billing.subscription.plan_changed",
                  subject: row.id,
                  data: {
                    subscriptionId: row.id,
                    customerId: row.customer_id,
                    sequence: first,
                    fromPlanId: fromPlan.id,
                    toPlanId: toPlan.id,
                    at: at.toISOString(),
                    lines: outcome.lines,
                    total: outcome.total,
                    currency: outcome.currency,
                    cycleReset: reset !== null,
                    currentPeriodStart: updated.current_period_start.toISOString(),
                    currentPeriodEnd: updated.current_period_end.toISOString(),
                    invoiceId: invoice?.invoiceId ?? null,
                  },
                })
                if (invoice !== undefined) {
                  // As the engine's finalized invoices say it (Lifecycle.ts).
                  yield* outbox.publish({
                    type: "billing.invoice.finalized",
                    subject: row.id,
                    data: {
                      subscriptionId: row.id,
                      customerId: row.customer_id,
                      sequence: first + 1,
                      ...invoice,
                      reason: "subscription_cycle",
                    },
                  })
                }
                return {
                  subscription: toSubscription(updated),
                  lines: outcome.lines,
                  total: outcome.total,
                  currency: outcome.currency,
                  invoiceId: invoice?.invoiceId ?? null,
                }
              }),
            ),
          )
          .pipe(
            Effect.catchTag("DbError", unavailable),
            // An answer kept under the key that no longer reads as what it was: a defect, not the caller's fault.
            Effect.catchIf(Schema.isSchemaError, (error) => Effect.die(error)),
          )
        if (result.invoiceId !== null && Option.isSome(engine)) yield* chargeNow(engine.value, result.invoiceId)
        return result
      })

      return PlanChanges.of({ preview, change })
    }),
  )
}
