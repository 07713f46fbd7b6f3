import type { Line } from "../Model.ts"

/** The query of a subscription's pending lines (not yet on an invoice), oldest first, in `schema`; `$1` its id. */
export const pendingLinesSql = (schema: string) =>
  `SELECT description, amount, quantity, period_start, period_end FROM ${schema}.pending_lines
   WHERE subscription_id = $1 AND invoice_id IS NULL ORDER BY created_at, id`

/** A pending line's row as the API shows lines. */
export const asLine = (row: Record<string, any>): Line => ({
  description: row.description,
  amount: Number(row.amount),
  quantity: row.quantity,
  periodStart: row.period_start.toISOString(),
  periodEnd: row.period_end.toISOString(),
})
