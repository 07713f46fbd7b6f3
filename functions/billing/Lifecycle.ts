// Billing's engine: subscriptions and their invoices through their lives. Every function takes the time it acts at
// (`now`): wall time for a subscription on the Clock, its test clock's frozen time for one on a clock, and the same
// code runs for both. What must never happen twice is guaranteed by the database, not by timing:
// - one invoice per subscription and period: the unique key (subscription_id, period_start), and the subscription's
//   row locked while its period advances (sweeps claim rows with FOR UPDATE SKIP LOCKED, so instances share the work);
// - one charge per payment attempt: the attempt row is committed before the provider is called, under the
//   idempotency key of (invoice, attempt); an attempt whose outcome was never recorded (a crash, an outage) is
//   repeated with its own key, never as a new attempt;
// - gapless numbers per year: a counter row bumped in the transaction that finalizes (a rollback gives it back).
// Events go to the outbox in the transaction of the change, each with the subscription's next sequence number.
import { Clock, Context, Effect, Exit, Layer, Option } from "effect"
import { Db, DbError } from "../../shared/Db.ts"
import { Notifier } from "../../shared/Notifier.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { Conflict, NotFound, type ServiceUnavailable } from "../../shared/Problem.ts"
import { PAYABLE, refusal } from "./InvoiceStatus.ts"
import * as Invoices from "./Invoices.ts"
import {
  type IntervalUnit,
  type Invoice,
  type InvoiceRow,
  type Line,
  type PlanRow,
  type Subscription,
  type SubscriptionRow,
  toInvoice,
  toSubscription,
  unavailable,
} from "./Model.ts"
import { nextPeriodEnd } from "./Periods.ts"
import { type ChargeOutcome, type ChargeRequest, chargeKey, PaymentProvider } from "./Provider.ts"
import { ReceiptRecipients, receiptMail } from "./Receipts.ts"

type Rec<T> = T & Record<string, unknown>
type SubRow = Rec<SubscriptionRow & { readonly billing_anchor: Date }>
type InvRow = Rec<InvoiceRow>
type PayableRow = InvRow & {
  readonly pm_customer_ref: string | null
  readonly pm_method_ref: string | null
  readonly undecided_attempt: number | null
  /** The method the undecided attempt was made with (null for one written before migration 0103). */
  readonly undecided_customer_ref: string | null
  readonly undecided_method_ref: string | null
}

const DAY_MS = 86_400_000
const LIVE = ["trialing", "active", "past_due"] as const

/** How the engine behaves: the dunning schedule and how long an undecided attempt is left before it is repeated. */
export interface LifecycleOptions {
  /** Days after an invoice's first failed payment at which it is tried again (BILLING_RETRY_SCHEDULE_DAYS). */
  readonly retryScheduleDays: ReadonlyArray<number>
  /**
   * How long an invoice being charged is left to the instance charging it before a sweep repeats its attempt (same
   * key): longer than a charge takes. Default 10 minutes.
   */
  readonly attemptLeaseMs?: number
  /** When a charge whose provider was unavailable is tried again (same attempt, same key). Default 5 minutes. */
  readonly unavailableRetryMs?: number
  /** How many charges one sweep runs at once. Default 4. */
  readonly chargeConcurrency?: number
}

/** What a sweep did. */
export interface SweepResult {
  /** Subscriptions renewed (or canceled at their period's end) / invoices whose payment was attempted. */
  readonly processed: number
}

/** How a payment attempt is made: `manual` is /pay (any payable invoice, a conflict when it cannot be tried). */
export interface CollectOptions {
  readonly now?: Date
  readonly manual?: boolean
}

type Engine = {
  /**
   * Subscribes a customer to an active plan: the subscription and (without a trial) its first invoice, finalized, in
   * one transaction, then its payment (paid: `active`; declined: `incomplete`, the invoice stays open and dunning
   * retries it). With a trial: `trialing` until the trial's end, no invoice until then.
   */
  subscribe(input: {
    readonly customerId: string
    readonly planId: string
    readonly testClockId?: string | undefined
    readonly now?: Date
  }): Effect.Effect<
    { readonly subscription: Subscription; readonly invoice: Option.Option<Invoice> },
    NotFound | Conflict | ServiceUnavailable
  >
  /** A payment attempt of an invoice now (a new attempt, or the repetition of an undecided one under its key). */
  collect(invoiceId: string, options?: CollectOptions): Effect.Effect<Invoice, NotFound | Conflict | ServiceUnavailable>
  /**
   * Renews one subscription whose period has ended by `now`: canceled if it was to end then, else the invoice of its
   * next period (pending lines taken), finalized, the period advanced, then its payment. None when nothing was due.
   */
  renew(
    subscriptionId: string,
    now: Date,
  ): Effect.Effect<Option.Option<Subscription>, NotFound | Conflict | ServiceUnavailable>
  /** Cancels now, or at the end of the current period (`atPeriodEnd`); a canceled subscription is a conflict. */
  cancel(
    subscriptionId: string,
    options: { readonly atPeriodEnd: boolean; readonly now?: Date },
  ): Effect.Effect<Subscription, NotFound | Conflict | ServiceUnavailable>
  /** Voids an open invoice; any other status, or a payment attempt in flight, is a conflict. */
  voidInvoice(
    invoiceId: string,
    options?: { readonly now?: Date },
  ): Effect.Effect<Invoice, NotFound | Conflict | ServiceUnavailable>
  /**
   * One batch of the renewal sweep: up to `limit` subscriptions due by `now` (on wall time, or on `clockId`'s time),
   * claimed with FOR UPDATE SKIP LOCKED (another instance takes the others), renewed in one transaction, then
   * charged. Call it until it processes nothing.
   */
  renewDue(
    now: Date,
    options?: { readonly clockId?: string; readonly limit?: number },
  ): Effect.Effect<SweepResult, ServiceUnavailable>
  /** One batch of the dunning sweep: open invoices whose next attempt is due by `now`, claimed the same way. */
  retryDue(
    now: Date,
    options?: { readonly clockId?: string; readonly limit?: number },
  ): Effect.Effect<SweepResult, ServiceUnavailable>
  /** The time a subscription's work happens at: its test clock's frozen time, or the Clock's. */
  nowFor(testClockId: string | null): Effect.Effect<Date, ServiceUnavailable>
}

const orUnavailable = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.catch(
    effect,
    (error): Effect.Effect<never, Exclude<E, DbError> | ServiceUnavailable> =>
      error instanceof DbError ? unavailable(error) : Effect.fail(error as Exclude<E, DbError>),
  ) as Effect.Effect<A, Exclude<E, DbError> | ServiceUnavailable, R>

const unitLabel = (unit: IntervalUnit, count: number) => (count === 1 ? unit : `${count} ${unit}s`)

/** Billing's subscription and invoice engine. */
export class Lifecycle extends Context.Service<Lifecycle, Engine>()("billing/Lifecycle") {
  static readonly layer = (options: LifecycleOptions) => Layer.effect(Lifecycle, make(options))
}

export const make = (options: LifecycleOptions) =>
  Effect.gen(function* () {
    const db = yield* Db
    const outbox = yield* Outbox
    const notifier = yield* Notifier
    const provider = yield* PaymentProvider
    const recipients = yield* ReceiptRecipients
    const s = db.schema
    const leaseMs = options.attemptLeaseMs ?? 10 * 60_000
    const unavailableRetryMs = options.unavailableRetryMs ?? 5 * 60_000
    const concurrency = options.chargeConcurrency ?? 4
    const schedule = options.retryScheduleDays
    const later = (now: Date, ms: number) => new Date(now.getTime() + ms)

    // ---- reading ----------------------------------------------------------------------------------------------

    const nowForDb = (testClockId: string | null) =>
      testClockId === null
        ? Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))
        : Effect.flatMap(
            db.query<{ frozen_time: Date }>(`SELECT frozen_time FROM ${s}.test_clocks WHERE id = $1`, [testClockId]),
            (rows) =>
              rows[0] === undefined
                ? Effect.die(new Error(`test clock ${testClockId} vanished`))
                : Effect.succeed(rows[0].frozen_time),
          )

    const lockSubscription = (id: string, wait = true) =>
      Effect.map(
        db.query<SubRow>(`SELECT * FROM ${s}.subscriptions WHERE id = $1 FOR UPDATE${wait ? "" : " SKIP LOCKED"}`, [
          id,
        ]),
        (rows) => rows[0],
      )

    const lockInvoice = (id: string) =>
      Effect.map(db.query<InvRow>(`SELECT * FROM ${s}.invoices WHERE id = $1 FOR UPDATE`, [id]), (rows) => rows[0])

    /** The subscription of an invoice and the invoice, both locked, in that order (every writer locks them so). */
    // With the invoice: its customer's payment method and its undecided attempt, if any, with the method that attempt
    // was made with (what a payment needs).
    const lockInvoiceWithSubscription = (invoiceId: string) =>
      Effect.gen(function* () {
        const subscription = (yield* db.query<SubRow>(
          `SELECT * FROM ${s}.subscriptions WHERE id = (SELECT subscription_id FROM ${s}.invoices WHERE id = $1)
           FOR UPDATE`,
          [invoiceId],
        ))[0]
        if (subscription === undefined) return undefined
        const invoice = (yield* db.query<PayableRow>(
          `SELECT i.*, pm.customer_ref AS pm_customer_ref, pm.payment_method_ref AS pm_method_ref,
             u.attempt AS undecided_attempt, u.customer_ref AS undecided_customer_ref,
             u.payment_method_ref AS undecided_method_ref
           FROM ${s}.invoices i LEFT JOIN ${s}.payment_methods pm ON pm.customer_id = i.customer_id
           LEFT JOIN LATERAL (
             SELECT a.attempt, a.customer_ref, a.payment_method_ref FROM ${s}.payment_attempts a
             WHERE a.invoice_id = i.id AND a.outcome IS NULL ORDER BY a.attempt LIMIT 1
           ) u ON true
           WHERE i.id = $1 FOR UPDATE OF i`,
          [invoiceId],
        ))[0]
        if (invoice === undefined) return undefined
        return { subscription, invoice }
      })

    // ---- events ------------------------------------------------------------------------------------------------

    /** Takes the subscription's next `n` sequence numbers; returns the first. */
    const takeSeq = (subscriptionId: string, n: number) =>
      Effect.map(
        db.query<{ seq: string }>(`UPDATE ${s}.subscriptions SET seq = seq + $2 WHERE id = $1 RETURNING seq`, [
          subscriptionId,
          n,
        ]),
        (rows) => Number(rows[0]!.seq) - n + 1,
      )

    const emit = (
      type: string,
      subscription: { readonly id: string; readonly customer_id: string },
      sequence: number,
      data: Record<string, unknown>,
    ) =>
      outbox.publish({
        type,
        subject: subscription.id,
        data: { subscriptionId: subscription.id, customerId: subscription.customer_id, sequence, ...data },
      })

    const invoiceFacts = (invoice: InvRow) => ({
      invoiceId: invoice.id,
      number: invoice.number,
      total: Number(invoice.total),
      amountDue: Number(invoice.amount_due),
      currency: invoice.currency,
      periodStart: invoice.period_start.toISOString(),
      periodEnd: invoice.period_end.toISOString(),
    })

    // ---- invoices ----------------------------------------------------------------------------------------------

    /** Inserts a draft invoice for a period (none if that period has one already: the unique key decides). */
    const insertDraft = (
      subscription: SubRow,
      reason: Invoices.Draft["reason"],
      currency: string,
      lines: ReadonlyArray<Line>,
      period: Invoices.Draft["period"],
      now: Date,
      pending: ReadonlyArray<string> = [],
    ) =>
      Invoices.insertDraft(db, {
        subscriptionId: subscription.id,
        customerId: subscription.customer_id,
        reason,
        currency,
        lines,
        period,
        pending,
        // Charged at once by whoever made it; if that instance dies first, the dunning sweep charges it after this.
        nextAttemptAt: later(now, leaseMs),
        now,
      }).pipe(Effect.orDie)

    /** Finalizes drafts (Invoices.finalize), and each one's `finalized` event with the sequence given. */
    const finalize = (
      drafts: ReadonlyArray<{ readonly invoice: InvRow; readonly subscription: SubRow; readonly seq: number }>,
      now: Date,
    ) =>
      Effect.gen(function* () {
        const out = yield* Invoices.finalize(
          db,
          drafts.map((draft) => draft.invoice.id),
          now,
        )
        for (const [i, draft] of drafts.entries()) {
          yield* emit("billing.invoice.finalized", draft.subscription, draft.seq, {
            ...invoiceFacts(out[i]!),
            reason: out[i]!.reason,
            status: "open",
          })
        }
        return out
      })

    const planOf = (planId: string) =>
      Effect.map(db.query<Rec<PlanRow>>(`SELECT * FROM ${s}.plans WHERE id = $1`, [planId]), (rows) => rows[0])

    const planLine = (plan: PlanRow, start: Date, end: Date): Line => ({
      description: `${plan.name} (every ${unitLabel(plan.interval_unit, plan.interval_count)})`,
      amount: Number(plan.amount),
      quantity: 1,
      periodStart: start.toISOString(),
      periodEnd: end.toISOString(),
    })

    // ---- renewal -----------------------------------------------------------------------------------------------

    type Renewed =
      | { readonly _tag: "none" }
      | { readonly _tag: "canceled"; readonly subscription: SubRow }
      | { readonly _tag: "renewed"; readonly subscription: SubRow; readonly draft?: { invoice: InvRow; seq: number } }

    /**
     * What a batch of renewals reads once: the plans met so far, and which of the batch's subscriptions have pending
     * lines (none given: each subscription's are looked up).
     */
    interface BatchCache {
      readonly plans: Map<string, Rec<PlanRow>>
      readonly withPending?: ReadonlySet<string>
    }

    /** Renews one locked subscription at `now`, within the caller's transaction; its invoice is left to finalize. */
    const renewLocked = (
      subscription: SubRow,
      now: Date,
      cache: BatchCache = { plans: new Map() },
    ): Effect.Effect<Renewed, DbError> =>
      Effect.gen(function* () {
        if (!(LIVE as ReadonlyArray<string>).includes(subscription.status)) return { _tag: "none" } as const
        if (subscription.current_period_end.getTime() > now.getTime()) return { _tag: "none" } as const
        const end = subscription.current_period_end
        if (subscription.cancel_at_period_end) {
          const seq = yield* takeSeq(subscription.id, 1)
          const rows = yield* db.query<SubRow>(
            `UPDATE ${s}.subscriptions SET status = 'canceled', canceled_at = $2 WHERE id = $1 RETURNING *`,
            [subscription.id, end],
          )
          yield* db.query(
            `UPDATE ${s}.invoices SET next_attempt_at = NULL WHERE subscription_id = $1 AND status = 'open'`,
            [subscription.id],
          )
          yield* emit("billing.subscription.canceled", subscription, seq, {
            status: "canceled",
            canceledAt: end.toISOString(),
            atPeriodEnd: true,
            reason: "requested",
          })
          return { _tag: "canceled", subscription: rows[0]! } as const
        }
        let plan = cache.plans.get(subscription.plan_id)
        if (plan === undefined) {
          plan = (yield* planOf(subscription.plan_id))!
          cache.plans.set(plan.id, plan)
        }
        const next = nextPeriodEnd(subscription.billing_anchor, end, plan.interval_unit, plan.interval_count)
        const pending =
          cache.withPending !== undefined && !cache.withPending.has(subscription.id)
            ? { ids: [], lines: [] }
            : yield* Invoices.pendingLines(db, subscription.id)
        const invoice = yield* insertDraft(
          subscription,
          "subscription_cycle",
          plan.currency,
          [planLine(plan, end, next), ...pending.lines],
          { start: end, end: next },
          now,
          pending.ids,
        )
        // The period advanced and the events' sequence numbers taken in one statement.
        const events = invoice === undefined ? 1 : 2
        const rows = yield* db.query<SubRow>(
          `UPDATE ${s}.subscriptions SET current_period_start = $2, current_period_end = $3, seq = seq + $4,
             status = CASE WHEN status = 'trialing' THEN 'active' ELSE status END
           WHERE id = $1 RETURNING *`,
          [subscription.id, end, next, events],
        )
        const renewed = rows[0]!
        const seq = Number(renewed.seq) - events + 1
        yield* emit("billing.subscription.renewed", renewed, seq, {
          status: renewed.status,
          trialEnded: subscription.status === "trialing",
          periodStart: end.toISOString(),
          periodEnd: next.toISOString(),
          invoiceId: invoice?.id ?? null,
        })
        return {
          _tag: "renewed",
          subscription: renewed,
          ...(invoice === undefined ? {} : { draft: { invoice, seq: seq + 1 } }),
        } as const
      })

    // ---- payment -----------------------------------------------------------------------------------------------

    type Prepared =
      | { readonly _tag: "done"; readonly invoice: InvRow }
      | {
          readonly _tag: "charge"
          readonly request: ChargeRequest
          readonly now: Date
          readonly customerId: string
        }

    /** Marks an invoice paid (and its subscription active again), with its event and receipt, in the caller's tx. */
    const markPaid = (
      subscription: SubRow,
      invoice: InvRow,
      now: Date,
      email: Option.Option<string>,
      attempt: number | null,
    ) =>
      Effect.gen(function* () {
        const paid = (yield* db.query<InvRow>(
          `UPDATE ${s}.invoices SET status = 'paid', amount_paid = total, amount_due = 0, paid_at = $2,
             next_attempt_at = NULL
           WHERE id = $1 RETURNING *`,
          [invoice.id, now],
        ))[0]!
        // Active again when the payment was what it waited for; the event's sequence number in the same statement.
        const [after] = yield* db.query<{ seq: string; status: string }>(
          `UPDATE ${s}.subscriptions SET seq = seq + 1,
             status = CASE WHEN status IN ('past_due', 'incomplete') THEN 'active' ELSE status END
           WHERE id = $1 RETURNING seq, status`,
          [subscription.id],
        )
        const seq = Number(after!.seq)
        const status = after!.status
        yield* emit("billing.invoice.paid", subscription, seq, {
          ...invoiceFacts(paid),
          amountPaid: Number(paid.amount_paid),
          attempt,
          paidAt: now.toISOString(),
          subscriptionStatus: status,
        })
        if (Option.isSome(email)) {
          yield* notifier.send(
            receiptMail(email.value, {
              number: paid.number!,
              total: Number(paid.total),
              currency: paid.currency,
              periodStart: paid.period_start,
              periodEnd: paid.period_end,
              paidAt: now,
              lines: paid.lines,
            }),
          )
        }
        return paid
      })

    const emailOf = (customerId: string) =>
      recipients.emailOf(customerId).pipe(
        Effect.catchCause((cause) =>
          Effect.as(
            Effect.logWarning("billing: the customer's address could not be asked; no receipt", {
              customerId,
              cause,
            }),
            Option.none<string>(),
          ),
        ),
      )

    /** tx1: the invoice locked, the attempt written (or the undecided one found) before the provider is called. */
    const prepare = (invoiceId: string, options: CollectOptions) =>
      db.transaction(
        Effect.gen(function* () {
          const locked = yield* lockInvoiceWithSubscription(invoiceId)
          if (locked === undefined) return yield* new NotFound({ detail: "no such invoice" })
          const { subscription, invoice } = locked
          const now = options.now ?? (yield* nowForDb(subscription.test_clock_id))
          const payable = options.manual === true ? PAYABLE : (["open"] as const)
          if (!(payable as ReadonlyArray<string>).includes(invoice.status)) {
            if (options.manual !== true) return { _tag: "done", invoice } as Prepared
            return yield* new Conflict({
              detail: refusal(invoice.status, "paid") ?? `the invoice is ${invoice.status}`,
            })
          }
          if (Number(invoice.amount_due) === 0) {
            const email = yield* emailOf(invoice.customer_id)
            return { _tag: "done", invoice: yield* markPaid(subscription, invoice, now, email, null) } as Prepared
          }
          const undecided = invoice.undecided_attempt === null ? undefined : { attempt: invoice.undecided_attempt }
          // An undecided attempt is repeated with exactly the method it was made with, whatever the customer saved
          // since: the same key with other parameters is an idempotency error at the provider (Stripe's), and the
          // charge it may have made is that method's. A new attempt takes the customer's current method.
          const method =
            undecided !== undefined && invoice.undecided_customer_ref !== null && invoice.undecided_method_ref !== null
              ? { customer_ref: invoice.undecided_customer_ref, payment_method_ref: invoice.undecided_method_ref }
              : invoice.pm_customer_ref === null || invoice.pm_method_ref === null
                ? undefined
                : { customer_ref: invoice.pm_customer_ref, payment_method_ref: invoice.pm_method_ref }
          if (method === undefined) {
            if (options.manual === true) {
              return yield* new Conflict({
                detail: "no payment method is saved for the customer: save one (PUT /payment-method) and pay again",
              })
            }
            if (undecided !== undefined) {
              // Its charge may have gone through with the method that was removed since: asked again later.
              yield* db.query(`UPDATE ${s}.invoices SET next_attempt_at = $2 WHERE id = $1`, [
                invoice.id,
                later(now, unavailableRetryMs),
              ])
              return { _tag: "done", invoice } as Prepared
            }
          }
          const attempt = undecided?.attempt ?? invoice.attempts + 1
          // The attempt with the method it charges (unless repeating the undecided one) and the invoice's lease, in
          // one statement.
          yield* db.query(
            `WITH attempt AS (
               INSERT INTO ${s}.payment_attempts
                 (invoice_id, attempt, provider, idempotency_key, amount, currency, created_at, customer_ref,
                  payment_method_ref)
               SELECT $1, $2, $4, $5, $6, $7, $8, $10, $11 WHERE $9
             )
             UPDATE ${s}.invoices SET attempts = GREATEST(attempts, $2), next_attempt_at = $3 WHERE id = $1`,
            [
              invoice.id,
              attempt,
              later(now, leaseMs),
              provider.name,
              chargeKey(invoice.id, attempt),
              invoice.amount_due,
              invoice.currency,
              now,
              undecided === undefined,
              method?.customer_ref ?? null,
              method?.payment_method_ref ?? null,
            ],
          )
          return {
            _tag: "charge",
            now,
            customerId: invoice.customer_id,
            request: {
              invoiceId: invoice.id,
              attempt,
              amount: Number(invoice.amount_due),
              currency: invoice.currency,
              // No method: declined without asking the provider (below).
              customerRef: method?.customer_ref ?? "",
              paymentMethodRef: method?.payment_method_ref ?? "",
            },
          } as Prepared
        }),
      )

    /** The next retry after a decline at `now`: the first scheduled day after the first failure still to come. */
    const nextRetry = (firstFailure: Date, now: Date): Date | undefined => {
      for (const days of schedule) {
        const at = new Date(firstFailure.getTime() + days * DAY_MS)
        if (at.getTime() > now.getTime()) return at
      }
      return undefined
    }

    /** tx2: the outcome recorded on its attempt (once), and what it means for the invoice and the subscription. */
    const decide = (
      invoiceId: string,
      attempt: number,
      outcome: ChargeOutcome,
      now: Date,
      email: Option.Option<string>,
    ) =>
      db.transaction(
        Effect.gen(function* () {
          const locked = yield* lockInvoiceWithSubscription(invoiceId)
          if (locked === undefined) return yield* Effect.die(new Error(`invoice ${invoiceId} vanished`))
          const { subscription, invoice } = locked
          if (outcome._tag === "unavailable") {
            yield* db.query(`UPDATE ${s}.invoices SET next_attempt_at = $2 WHERE id = $1 AND status = 'open'`, [
              invoiceId,
              later(now, unavailableRetryMs),
            ])
            return (yield* lockInvoice(invoiceId))!
          }
          const recorded = yield* db.query(
            `UPDATE ${s}.payment_attempts SET outcome = $3, reason = $4, reference = $5, decided_at = $6
             WHERE invoice_id = $1 AND attempt = $2 AND outcome IS NULL RETURNING attempt`,
            [
              invoiceId,
              attempt,
              outcome._tag,
              outcome._tag === "declined" ? outcome.reason : null,
              outcome._tag === "paid" ? outcome.reference : null,
              now,
            ],
          )
          // Another instance repeating the same attempt recorded it first: its outcome is the one.
          if (recorded.length === 0) return invoice
          if (!(PAYABLE as ReadonlyArray<string>).includes(invoice.status)) {
            if (outcome._tag === "paid") {
              yield* Effect.logError("billing: a charge succeeded for an invoice that is no longer payable", {
                invoiceId,
                status: invoice.status,
                reference: outcome.reference,
              })
            }
            return invoice
          }
          if (outcome._tag === "paid") return yield* markPaid(subscription, invoice, now, email, attempt)
          // Declined.
          if (invoice.status === "uncollectible") {
            const seq = yield* takeSeq(subscription.id, 1)
            yield* emit("billing.invoice.payment_failed", subscription, seq, {
              ...invoiceFacts(invoice),
              attempt,
              reason: outcome.reason,
              nextAttemptAt: null,
            })
            return invoice
          }
          const first = (yield* db.query<{ first: Date }>(
            `SELECT min(decided_at) AS first FROM ${s}.payment_attempts WHERE invoice_id = $1 AND outcome = 'declined'`,
            [invoiceId],
          ))[0]!.first
          const retryAt = nextRetry(first, now)
          const live = subscription.status !== "canceled"
          if (retryAt !== undefined || !live) {
            const updated = (yield* db.query<InvRow>(
              `UPDATE ${s}.invoices SET next_attempt_at = $2 WHERE id = $1 RETURNING *`,
              [invoiceId, live ? retryAt : null],
            ))[0]!
            const pastDue = live && (subscription.status === "active" || subscription.status === "trialing")
            const seq = yield* takeSeq(subscription.id, pastDue ? 2 : 1)
            yield* emit("billing.invoice.payment_failed", subscription, seq, {
              ...invoiceFacts(updated),
              attempt,
              reason: outcome.reason,
              nextAttemptAt: live && retryAt !== undefined ? retryAt.toISOString() : null,
            })
            if (pastDue) {
              yield* db.query(`UPDATE ${s}.subscriptions SET status = 'past_due' WHERE id = $1`, [subscription.id])
              yield* emit("billing.subscription.past_due", subscription, seq + 1, {
                status: "past_due",
                invoiceId,
              })
            }
            return updated
          }
          // The last retry failed: the invoice is given up and the subscription ends.
          const given = (yield* db.query<InvRow>(
            `UPDATE ${s}.invoices SET status = 'uncollectible', next_attempt_at = NULL WHERE id = $1 RETURNING *`,
            [invoiceId],
          ))[0]!
          yield* db.query(`UPDATE ${s}.subscriptions SET status = 'canceled', canceled_at = $2 WHERE id = $1`, [
            subscription.id,
            now,
          ])
          yield* db.query(
            `UPDATE ${s}.invoices SET next_attempt_at = NULL WHERE subscription_id = $1 AND status = 'open'`,
            [subscription.id],
          )
          const seq = yield* takeSeq(subscription.id, 2)
          yield* emit("billing.invoice.payment_failed", subscription, seq, {
            ...invoiceFacts(given),
            status: "uncollectible",
            attempt,
            reason: outcome.reason,
            nextAttemptAt: null,
          })
          yield* emit("billing.subscription.canceled", subscription, seq + 1, {
            status: "canceled",
            canceledAt: now.toISOString(),
            atPeriodEnd: false,
            reason: "payment_failed",
            invoiceId,
          })
          return given
        }),
      )

    const collectRaw = (invoiceId: string, options: CollectOptions = {}) =>
      Effect.gen(function* () {
        const prepared = yield* prepare(invoiceId, options)
        if (prepared._tag === "done") return prepared.invoice
        const { request, now } = prepared
        const outcome: ChargeOutcome =
          request.paymentMethodRef === ""
            ? { _tag: "declined", reason: "no_payment_method" }
            : yield* provider.charge(request)
        const email = outcome._tag === "paid" ? yield* emailOf(prepared.customerId) : Option.none<string>()
        return yield* decide(invoiceId, request.attempt, outcome, now, email)
      })

    const collect: Engine["collect"] = (invoiceId, options) =>
      collectRaw(invoiceId, options).pipe(Effect.map(toInvoice), orUnavailable, Effect.withSpan("Lifecycle.collect"))

    /** Charges invoices made or claimed by a sweep, a few at once; one failing does not stop the others. */
    const collectAll = (invoiceIds: ReadonlyArray<string>, now: Date) =>
      Effect.forEach(
        invoiceIds,
        (id) =>
          collectRaw(id, { now }).pipe(
            Effect.catchCause((cause) =>
              Effect.logError("billing: a payment attempt failed; the sweep repeats it", { invoiceId: id, cause }),
            ),
          ),
        { concurrency, discard: true },
      )

    // ---- operations --------------------------------------------------------------------------------------------

    const subscribe: Engine["subscribe"] = (input) =>
      Effect.gen(function* () {
        const made = yield* db.transaction(
          Effect.gen(function* () {
            const plan = yield* planOf(input.planId)
            if (plan === undefined) return yield* new NotFound({ detail: "no such plan (planId)" })
            if (!plan.active) return yield* new Conflict({ detail: "the plan is archived: choose an active plan" })
            const clockId = input.testClockId ?? null
            if (clockId !== null) {
              const clock = yield* db.query(`SELECT 1 FROM ${s}.test_clocks WHERE id = $1`, [clockId])
              if (clock.length === 0) return yield* new NotFound({ detail: "no such test clock (testClockId)" })
            }
            const now = input.now ?? (yield* nowForDb(clockId))
            const trial = plan.trial_days > 0
            if (!trial) {
              const method = yield* db.query(`SELECT 1 FROM ${s}.payment_methods WHERE customer_id = $1`, [
                input.customerId,
              ])
              if (method.length === 0) {
                return yield* new Conflict({
                  detail:
                    "no payment method is saved: save one (PUT /payment-method) before subscribing to a plan without a trial",
                })
              }
            }
            const trialEnd = trial ? new Date(now.getTime() + plan.trial_days * DAY_MS) : null
            const anchor = trialEnd ?? now
            const end = trialEnd ?? nextPeriodEnd(anchor, now, plan.interval_unit, plan.interval_count)
            const subscription = (yield* db.query<SubRow>(
              `INSERT INTO ${s}.subscriptions (customer_id, plan_id, status, current_period_start, current_period_end,
                 trial_end, test_clock_id, billing_anchor, seq, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $4) RETURNING *`,
              [input.customerId, plan.id, trial ? "trialing" : "incomplete", now, end, trialEnd, clockId, anchor],
            ))[0]!
            yield* emit("billing.subscription.created", subscription, 1, {
              planId: plan.id,
              status: subscription.status,
              currentPeriodStart: now.toISOString(),
              currentPeriodEnd: end.toISOString(),
              trialEnd: trialEnd?.toISOString() ?? null,
              amount: Number(plan.amount),
              currency: plan.currency,
            })
            if (trial) return { subscription, invoice: undefined, now }
            const draft = (yield* insertDraft(
              subscription,
              "subscription_create",
              plan.currency,
              [planLine(plan, now, end)],
              { start: now, end },
              now,
            ))!
            const seq = yield* takeSeq(subscription.id, 1)
            const [invoice] = yield* finalize([{ invoice: draft, subscription, seq }], now)
            return { subscription, invoice, now }
          }),
        )
        if (made.invoice === undefined) {
          return { subscription: toSubscription(made.subscription), invoice: Option.none<Invoice>() }
        }
        const invoice = yield* collectRaw(made.invoice.id, { now: made.now })
        const subscription = (yield* db.query<SubRow>(`SELECT * FROM ${s}.subscriptions WHERE id = $1`, [
          made.subscription.id,
        ]))[0]!
        return { subscription: toSubscription(subscription), invoice: Option.some(toInvoice(invoice)) }
      }).pipe(orUnavailable, Effect.withSpan("Lifecycle.subscribe"))

    const renew: Engine["renew"] = (subscriptionId, now) =>
      Effect.gen(function* () {
        const done = yield* db.transaction(
          Effect.gen(function* () {
            const subscription = yield* lockSubscription(subscriptionId)
            if (subscription === undefined) return yield* new NotFound({ detail: "no such subscription" })
            const renewed = yield* renewLocked(subscription, now)
            if (renewed._tag === "renewed" && renewed.draft !== undefined) {
              yield* finalize([{ ...renewed.draft, subscription: renewed.subscription }], now)
            }
            return renewed
          }),
        )
        if (done._tag === "none") return Option.none()
        if (done._tag === "renewed" && done.draft !== undefined) yield* collectRaw(done.draft.invoice.id, { now })
        const row = (yield* db.query<SubRow>(`SELECT * FROM ${s}.subscriptions WHERE id = $1`, [subscriptionId]))[0]!
        return Option.some(toSubscription(row))
      }).pipe(orUnavailable, Effect.withSpan("Lifecycle.renew"))

    const clockFilter = (column: string, clockId: string | undefined, param: number) =>
      clockId === undefined ? `${column} IS NULL` : `${column} = $${param}`

    const renewDue: Engine["renewDue"] = (now, options = {}) =>
      Effect.gen(function* () {
        const limit = options.limit ?? 100
        const params: Array<unknown> = [now, limit]
        if (options.clockId !== undefined) params.push(options.clockId)
        const batch = yield* db.transaction(
          Effect.gen(function* () {
            const due = yield* db.query<SubRow>(
              `SELECT * FROM ${s}.subscriptions
               WHERE status IN ('trialing', 'active', 'past_due') AND current_period_end <= $1
                 AND ${clockFilter("test_clock_id", options.clockId, 3)}
               ORDER BY current_period_end, id LIMIT $2 FOR UPDATE SKIP LOCKED`,
              params,
            )
            const drafts: Array<{ invoice: InvRow; subscription: SubRow; seq: number }> = []
            const pending =
              due.length === 0
                ? []
                : yield* db.query<{ subscription_id: string }>(
                    `SELECT DISTINCT subscription_id FROM ${s}.pending_lines
                   WHERE invoice_id IS NULL AND subscription_id = ANY($1::uuid[])`,
                    [due.map((row) => row.id)],
                  )
            const cache: BatchCache = {
              plans: new Map(),
              withPending: new Set(pending.map((row) => row.subscription_id)),
            }
            let processed = 0
            for (const subscription of due) {
              // Each in a savepoint: one subscription that cannot be renewed (logged) does not hold up the others.
              const exit = yield* Effect.exit(db.savepoint(renewLocked(subscription, now, cache)))
              if (Exit.isFailure(exit)) {
                if (Exit.hasInterrupts(exit)) return yield* Effect.failCause(exit.cause)
                yield* Effect.logError("billing: a subscription could not be renewed; it stays due", {
                  subscriptionId: subscription.id,
                  cause: exit.cause,
                })
                continue
              }
              processed += 1
              const renewed = exit.value
              if (renewed._tag === "renewed" && renewed.draft !== undefined) {
                drafts.push({ ...renewed.draft, subscription: renewed.subscription })
              }
            }
            const invoices = yield* finalize(drafts, now)
            // Failures are not counted: a batch of only failures ends the drain instead of claiming them again.
            return { processed, invoices: invoices.map((invoice) => invoice.id) }
          }),
        )
        yield* collectAll(batch.invoices, now)
        return { processed: batch.processed }
      }).pipe(orUnavailable, Effect.withSpan("Lifecycle.renewDue"))

    const retryDue: Engine["retryDue"] = (now, options = {}) =>
      Effect.gen(function* () {
        const limit = options.limit ?? 100
        const params: Array<unknown> = [now, limit, later(now, leaseMs)]
        if (options.clockId !== undefined) params.push(options.clockId)
        // Claimed for a lease: another instance passes over them until it ends (or until their attempt is decided).
        const claimed = yield* db.query<{ id: string }>(
          `UPDATE ${s}.invoices SET next_attempt_at = $3 WHERE id IN (
             SELECT i.id FROM ${s}.invoices i JOIN ${s}.subscriptions sub ON sub.id = i.subscription_id
             WHERE i.status = 'open' AND i.next_attempt_at <= $1 AND ${clockFilter("sub.test_clock_id", options.clockId, 4)}
             ORDER BY i.next_attempt_at, i.id LIMIT $2 FOR UPDATE OF i SKIP LOCKED)
           RETURNING id`,
          params,
        )
        yield* collectAll(
          claimed.map((row) => row.id),
          now,
        )
        return { processed: claimed.length }
      }).pipe(orUnavailable, Effect.withSpan("Lifecycle.retryDue"))

    const cancel: Engine["cancel"] = (subscriptionId, options) =>
      db
        .transaction(
          Effect.gen(function* () {
            const subscription = yield* lockSubscription(subscriptionId)
            if (subscription === undefined) return yield* new NotFound({ detail: "no such subscription" })
            if (subscription.status === "canceled") {
              return yield* new Conflict({ detail: "the subscription is already canceled" })
            }
            const now = options.now ?? (yield* nowForDb(subscription.test_clock_id))
            if (options.atPeriodEnd) {
              if (subscription.cancel_at_period_end) return subscription
              const seq = yield* takeSeq(subscription.id, 1)
              const row = (yield* db.query<SubRow>(
                `UPDATE ${s}.subscriptions SET cancel_at_period_end = true WHERE id = $1 RETURNING *`,
                [subscription.id],
              ))[0]!
              yield* emit("billing.subscription.canceled", subscription, seq, {
                status: row.status,
                atPeriodEnd: true,
                cancelAt: row.current_period_end.toISOString(),
                canceledAt: null,
                reason: "requested",
              })
              return row
            }
            const seq = yield* takeSeq(subscription.id, 1)
            const row = (yield* db.query<SubRow>(
              `UPDATE ${s}.subscriptions SET status = 'canceled', canceled_at = $2 WHERE id = $1 RETURNING *`,
              [subscription.id, now],
            ))[0]!
            // Its open invoices stay payable (/pay) but are no longer retried.
            yield* db.query(
              `UPDATE ${s}.invoices SET next_attempt_at = NULL WHERE subscription_id = $1 AND status = 'open'`,
              [subscription.id],
            )
            yield* emit("billing.subscription.canceled", subscription, seq, {
              status: "canceled",
              atPeriodEnd: false,
              canceledAt: now.toISOString(),
              reason: "requested",
            })
            return row
          }),
        )
        .pipe(Effect.map(toSubscription), orUnavailable, Effect.withSpan("Lifecycle.cancel"))

    const voidInvoice: Engine["voidInvoice"] = (invoiceId, options = {}) =>
      db
        .transaction(
          Effect.gen(function* () {
            const locked = yield* lockInvoiceWithSubscription(invoiceId)
            if (locked === undefined) return yield* new NotFound({ detail: "no such invoice" })
            const { subscription, invoice } = locked
            const refused = refusal(invoice.status, "void")
            if (refused !== undefined) return yield* new Conflict({ detail: refused })
            const inFlight = yield* db.query(
              `SELECT 1 FROM ${s}.payment_attempts WHERE invoice_id = $1 AND outcome IS NULL`,
              [invoiceId],
            )
            if (inFlight.length > 0) {
              return yield* new Conflict({
                detail:
                  "a payment attempt of the invoice is in progress: its outcome is not known yet; try again later",
              })
            }
            const now = options.now ?? (yield* nowForDb(subscription.test_clock_id))
            const voided = (yield* db.query<InvRow>(
              `UPDATE ${s}.invoices SET status = 'void', next_attempt_at = NULL WHERE id = $1 RETURNING *`,
              [invoiceId],
            ))[0]!
            // Past due because of this invoice only: it no longer is.
            let status = subscription.status
            if (status === "past_due") {
              const others = yield* db.query(
                `SELECT 1 FROM ${s}.invoices WHERE subscription_id = $1 AND status = 'open' AND id <> $2 LIMIT 1`,
                [subscription.id, invoiceId],
              )
              if (others.length === 0) {
                status = "active"
                yield* db.query(`UPDATE ${s}.subscriptions SET status = 'active' WHERE id = $1`, [subscription.id])
              }
            }
            const seq = yield* takeSeq(subscription.id, 1)
            yield* emit("billing.invoice.voided", subscription, seq, {
              ...invoiceFacts(voided),
              status: "void",
              voidedAt: now.toISOString(),
              subscriptionStatus: status,
            })
            return voided
          }),
        )
        .pipe(Effect.map(toInvoice), orUnavailable, Effect.withSpan("Lifecycle.voidInvoice"))

    const nowFor: Engine["nowFor"] = (testClockId) => orUnavailable(nowForDb(testClockId))

    return Lifecycle.of({ subscribe, collect, renew, cancel, voidInvoice, renewDue, retryDue, nowFor })
  })
