import { Context, Effect, Layer } from "effect"
import { Permissions } from "../../shared/access/Permissions.ts"
import { Db } from "../../shared/Db.ts"
import { DEFAULT_LIMIT, decodeTimeCursor, pageOf } from "../../shared/Pagination.ts"
import { Forbidden, NotFound, type ServiceUnavailable, type ValidationFailed } from "../../shared/Problem.ts"
import {
  type Invoice,
  type InvoiceRow,
  type InvoiceStatus,
  type Subscription,
  type SubscriptionRow,
  type SubscriptionStatus,
  toInvoice,
  toSubscription,
  unavailable,
} from "./Model.ts"

// The reads of subscriptions and invoices, with billing's ownership rule: a customer reads their own; a holder of the
// `.read.any` permission reads everyone's; anyone else is told the resource does not exist (404, never 403, so ids
// of others' subscriptions and invoices are not confirmed), as blog does with drafts.

/** Who may read anyone's subscriptions, and anyone's invoices. */
export const READ_ANY = {
  subscription: "billing.subscription.read.any",
  invoice: "billing.invoice.read.any",
} as const

/** A page of a list: `{items, nextCursor}`. */
export interface Page<A> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: string | null
}

/** A list's query: a page, and the filters the contract allows (validated there). */
export interface ListQuery<S extends string> {
  readonly customerId?: string | undefined
  readonly status?: S | undefined
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

// Each row with its keyset position as Postgres prints it (microseconds): what a cursor carries is what is stored.
const POSITION = `to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS position`
const SUBSCRIPTION_COLUMNS = `id, customer_id, plan_id, status, current_period_start, current_period_end, trial_end,
  cancel_at_period_end, canceled_at, test_clock_id, seq, created_at, ${POSITION}`
const INVOICE_COLUMNS = `id, number, subscription_id, customer_id, status, reason, currency, lines, subtotal, total,
  amount_paid, amount_due, period_start, period_end, attempts, next_attempt_at, paid_at, created_at, ${POSITION}`

type Positioned<R> = R & { readonly position: string; readonly [column: string]: unknown }

/** Billing's reads of subscriptions and invoices, ownership enforced. */
export class Reads extends Context.Service<
  Reads,
  {
    /** Subscriptions, newest first: the filter's customer (or everyone's) and status. No permission check: the caller's. */
    subscriptions(
      query: ListQuery<SubscriptionStatus>,
    ): Effect.Effect<Page<Subscription>, ValidationFailed | ServiceUnavailable>
    /** Invoices, newest first: the filter's customer (or everyone's) and status. No permission check: the caller's. */
    invoices(query: ListQuery<InvoiceStatus>): Effect.Effect<Page<Invoice>, ValidationFailed | ServiceUnavailable>
    /** A subscription the viewer owns or may read with `billing.subscription.read.any`; 404 otherwise. */
    subscription(viewer: string, id: string): Effect.Effect<Subscription, NotFound | ServiceUnavailable, Permissions>
    /** An invoice the viewer owns or may read with `billing.invoice.read.any`; 404 otherwise. */
    invoice(viewer: string, id: string): Effect.Effect<Invoice, NotFound | ServiceUnavailable, Permissions>
    /**
     * Whether the caller may act on a subscription or an invoice: their own, or anyone's with `any`. Otherwise a 403
     * when they may read it (the `.read.any` permission), a 404 when they may not even see it.
     */
    authorize(
      kind: "subscription" | "invoice",
      callerId: string,
      id: string,
      any: string,
    ): Effect.Effect<void, NotFound | Forbidden | ServiceUnavailable, Permissions>
  }
>()("billing/Reads") {
  /** Reads over billing's tables; the ownership rule asks the request's `Permissions`. */
  static readonly layer = Layer.effect(
    Reads,
    Effect.gen(function* () {
      const db = yield* Db

      const may = (userId: string, permission: string) =>
        Effect.flatMap(Effect.service(Permissions), (permissions) => permissions.check(userId, permission))

      // A keyset page of `table`, newest first, with the filters the contract validated.
      const list = <R>(table: string, columns: string, query: ListQuery<string>) =>
        Effect.gen(function* () {
          const limit = query.limit ?? DEFAULT_LIMIT
          const after = query.cursor === undefined ? undefined : yield* decodeTimeCursor(query.cursor)
          const params: Array<unknown> = []
          const where: Array<string> = []
          if (query.customerId !== undefined) {
            params.push(query.customerId)
            where.push(`customer_id = $${params.length}`)
          }
          if (query.status !== undefined) {
            params.push(query.status)
            where.push(`status = $${params.length}`)
          }
          if (after !== undefined) {
            params.push(after.at, after.id)
            where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`)
          }
          params.push(limit + 1)
          const rows = yield* db
            .query<Positioned<R>>(
              `SELECT ${columns} FROM ${db.schema}.${table}
               ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
               ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
              params,
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          return pageOf(rows, limit, (row) => ({ at: row.position, id: row.id as string }))
        })

      // One row by id when the viewer owns it or holds `readAny`; a 404 otherwise (the same answer as none at all).
      const one = <R extends { readonly customer_id: string }>(
        table: string,
        columns: string,
        what: string,
        readAny: string,
        viewer: string,
        id: string,
      ) =>
        Effect.gen(function* () {
          const [row] = yield* db
            .query<Positioned<R>>(`SELECT ${columns} FROM ${db.schema}.${table} WHERE id = $1`, [id])
            .pipe(Effect.catchTag("DbError", unavailable))
          const visible = row !== undefined && (row.customer_id === viewer || (yield* may(viewer, readAny)))
          if (!visible) return yield* new NotFound({ detail: `no ${what} ${id}` })
          return row
        })

      const authorize = Effect.fn("Reads.authorize")(function* (
        kind: "subscription" | "invoice",
        callerId: string,
        id: string,
        any: string,
      ) {
        const [row] = yield* db
          .query<{ customer_id: string }>(`SELECT customer_id FROM ${db.schema}.${kind}s WHERE id = $1`, [id])
          .pipe(Effect.catchTag("DbError", unavailable))
        if (row === undefined) return yield* new NotFound({ detail: `no ${kind} ${id}` })
        if (row.customer_id === callerId || (yield* may(callerId, any))) return
        if (!(yield* may(callerId, READ_ANY[kind]))) return yield* new NotFound({ detail: `no ${kind} ${id}` })
        return yield* new Forbidden({ detail: `acting on another customer's ${kind} needs ${any}` })
      })

      return Reads.of({
        authorize,
        subscriptions: Effect.fn("Reads.subscriptions")(function* (query) {
          const page = yield* list<SubscriptionRow>("subscriptions", SUBSCRIPTION_COLUMNS, query)
          return { items: page.items.map(toSubscription), nextCursor: page.nextCursor }
        }),
        invoices: Effect.fn("Reads.invoices")(function* (query) {
          const page = yield* list<InvoiceRow>("invoices", INVOICE_COLUMNS, query)
          return { items: page.items.map(toInvoice), nextCursor: page.nextCursor }
        }),
        subscription: Effect.fn("Reads.subscription")(function* (viewer, id) {
          const row = yield* one<SubscriptionRow>(
            "subscriptions",
            SUBSCRIPTION_COLUMNS,
            "subscription",
            READ_ANY.subscription,
            viewer,
            id,
          )
          return toSubscription(row)
        }),
        invoice: Effect.fn("Reads.invoice")(function* (viewer, id) {
          const row = yield* one<InvoiceRow>("invoices", INVOICE_COLUMNS, "invoice", READ_ANY.invoice, viewer, id)
          return toInvoice(row)
        }),
      })
    }),
  )
}
