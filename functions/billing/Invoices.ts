// How an invoice is made, shared by the engine's subscriptions and renewals (Lifecycle.ts) and a plan change's reset
// cycle (PlanChange.ts): the subscription's pending lines taken, a draft inserted for its period (the unique key on
// subscription and period start decides: none when that period has one), a net credit carried to the next invoice, and
// the drafts numbered from the year's counter in the transaction that finalizes them (gapless: a rollback gives the
// numbers back). Every function runs inside the caller's transaction.
import { Effect } from "effect"
import type { Db } from "../../shared/Db.ts"
import type { InvoiceRow, Line } from "./Model.ts"
import { sum } from "./Money.ts"

type Rows = Db["Service"]
type InvRow = InvoiceRow & Record<string, unknown>

/** `YYYY-NNNNNN`: the year of finalization and the invoice's place in it (6 digits or more). */
export const invoiceNumber = (year: number, n: number) => `${year}-${String(n).padStart(6, "0")}`

/** A subscription's pending lines (prorations, carried credits), oldest first, locked until the caller's commit. */
export const pendingLines = (db: Rows, subscriptionId: string) =>
  Effect.map(
    db.query<{
      id: string
      description: string
      amount: string | number
      quantity: number
      period_start: Date
      period_end: Date
    }>(
      `SELECT id, description, amount, quantity, period_start, period_end FROM ${db.schema}.pending_lines
       WHERE subscription_id = $1 AND invoice_id IS NULL ORDER BY created_at, id FOR UPDATE`,
      [subscriptionId],
    ),
    (rows) => ({
      ids: rows.map((row) => row.id),
      lines: rows.map(
        (row): Line => ({
          description: row.description,
          amount: Number(row.amount),
          quantity: row.quantity,
          periodStart: row.period_start.toISOString(),
          periodEnd: row.period_end.toISOString(),
        }),
      ),
    }),
  )

/** What a draft is made of. */
export interface Draft {
  readonly subscriptionId: string
  readonly customerId: string
  readonly reason: "subscription_create" | "subscription_cycle"
  readonly currency: string
  readonly lines: ReadonlyArray<Line>
  readonly period: { readonly start: Date; readonly end: Date }
  /** The pending lines it takes (`pendingLines`' ids): marked as this invoice's. */
  readonly pending: ReadonlyArray<string>
  /** When the dunning sweep may charge it (whoever made it charges it at once). */
  readonly nextAttemptAt: Date
  readonly now: Date
}

/**
 * Inserts a draft invoice for its period, total = max(0, subtotal); undefined when that period has an invoice already
 * (the unique key decides). A credit beyond the charges waits for the next invoice as a pending line. Fails with
 * `MoneyOverflow` (field `total`) when the lines' sum overflows.
 */
export const insertDraft = (db: Rows, draft: Draft) =>
  Effect.gen(function* () {
    const s = db.schema
    const subtotal = yield* sum(draft.lines.map((line) => line.amount * line.quantity))
    const total = Math.max(0, subtotal)
    const [invoice] = yield* db.query<InvRow>(
      `INSERT INTO ${s}.invoices (subscription_id, customer_id, status, reason, currency, lines, subtotal, total,
         amount_due, period_start, period_end, next_attempt_at, created_at)
       VALUES ($1, $2, 'draft', $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)
       ON CONFLICT (subscription_id, period_start) DO NOTHING
       RETURNING *`,
      [
        draft.subscriptionId,
        draft.customerId,
        draft.reason,
        draft.currency,
        JSON.stringify(draft.lines),
        subtotal,
        total,
        draft.period.start,
        draft.period.end,
        draft.nextAttemptAt,
        draft.now,
      ],
    )
    if (invoice === undefined) return undefined
    if (draft.pending.length > 0) {
      yield* db.query(`UPDATE ${s}.pending_lines SET invoice_id = $1 WHERE id = ANY($2::uuid[])`, [
        invoice.id,
        draft.pending,
      ])
    }
    if (subtotal < 0) {
      yield* db.query(
        `INSERT INTO ${s}.pending_lines (subscription_id, description, amount, currency, period_start, period_end)
         VALUES ($1, 'Credit carried over', $2, $3, $4, $5)`,
        [draft.subscriptionId, subtotal, draft.currency, draft.period.start, draft.period.end],
      )
    }
    return invoice
  })

/**
 * Finalizes drafts at `now`: numbered in the given order from the year's counter (one statement for all, so the
 * counter's row is held only to the commit just after), status open. Answers them in the given order.
 */
export const finalize = (db: Rows, draftIds: ReadonlyArray<string>, now: Date) =>
  Effect.gen(function* () {
    if (draftIds.length === 0) return [] as Array<InvRow>
    const s = db.schema
    const year = now.getUTCFullYear()
    const [counter] = yield* db.query<{ last: string }>(
      `INSERT INTO ${s}.invoice_numbers (year, last) VALUES ($1, $2)
       ON CONFLICT (year) DO UPDATE SET last = invoice_numbers.last + EXCLUDED.last RETURNING last`,
      [year, draftIds.length],
    )
    const first = Number(counter!.last) - draftIds.length + 1
    const finalized = yield* db.query<InvRow>(
      `UPDATE ${s}.invoices i SET status = 'open', number = v.number
       FROM unnest($1::uuid[], $2::text[]) AS v(id, number) WHERE i.id = v.id RETURNING i.*`,
      [draftIds, draftIds.map((_, i) => invoiceNumber(year, first + i))],
    )
    const byId = new Map(finalized.map((row) => [row.id, row]))
    return draftIds.map((id) => byId.get(id)!)
  })
