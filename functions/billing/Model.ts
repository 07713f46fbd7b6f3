import { Schema } from "effect"
import * as Problem from "../../shared/Problem.ts"
import { Currency } from "./Money.ts"

// Billing's resources as the API and the events show them (API.md "Billing"), their rows as the database holds them
// (migrations 0101), and the one mapping between the two. Amounts are integer minor units everywhere (Money.ts); times
// are RFC 3339 UTC strings in the API and timestamptz in the database.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** Billing's answer when its database fails: a 503 problem (the cause logged, never shown). */
export const unavailable = Problem.unavailable("billing: the database failed", "billing is unavailable, retry later")

/** An id of billing's (a UUID): anything else in a path or a query is a 400 naming it, never a database error. */
export const Id = Schema.String.check(Schema.isPattern(UUID, { message: "must be a UUID" }))

/** How often a plan bills: every `intervalCount` days, weeks, months or years (calendar months, in UTC). */
export const IntervalUnit = Schema.Literals(["day", "week", "month", "year"])
export type IntervalUnit = typeof IntervalUnit.Type

export const SubscriptionStatus = Schema.Literals(["trialing", "active", "past_due", "canceled", "incomplete"])
export type SubscriptionStatus = typeof SubscriptionStatus.Type

export const InvoiceStatus = Schema.Literals(["draft", "open", "paid", "void", "uncollectible"])
export type InvoiceStatus = typeof InvoiceStatus.Type

/** A plan: its price never changes once created (a new plan replaces it; the old one is archived, `active: false`). */
export const Plan = Schema.Struct({
  id: Schema.String,
  code: Schema.String,
  name: Schema.String,
  description: Schema.String,
  amount: Schema.Number,
  currency: Currency,
  interval: IntervalUnit,
  intervalCount: Schema.Number,
  trialDays: Schema.Number,
  active: Schema.Boolean,
  createdAt: Schema.String,
})
export type Plan = typeof Plan.Type

export const Subscription = Schema.Struct({
  id: Schema.String,
  customerId: Schema.String,
  planId: Schema.String,
  status: SubscriptionStatus,
  currentPeriodStart: Schema.String,
  currentPeriodEnd: Schema.String,
  trialEnd: Schema.NullOr(Schema.String),
  cancelAtPeriodEnd: Schema.Boolean,
  canceledAt: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
})
export type Subscription = typeof Subscription.Type

/** One line of an invoice: a plan's period, or a proration (negative: a credit). */
export const Line = Schema.Struct({
  description: Schema.String,
  amount: Schema.Number,
  quantity: Schema.Number,
  periodStart: Schema.String,
  periodEnd: Schema.String,
})
export type Line = typeof Line.Type

export const Invoice = Schema.Struct({
  id: Schema.String,
  number: Schema.NullOr(Schema.String),
  subscriptionId: Schema.String,
  customerId: Schema.String,
  status: InvoiceStatus,
  currency: Currency,
  lines: Schema.Array(Line),
  subtotal: Schema.Number,
  total: Schema.Number,
  amountPaid: Schema.Number,
  amountDue: Schema.Number,
  periodStart: Schema.String,
  periodEnd: Schema.String,
  attempts: Schema.Number,
  nextAttemptAt: Schema.NullOr(Schema.String),
  paidAt: Schema.NullOr(Schema.String),
  createdAt: Schema.String,
})
export type Invoice = typeof Invoice.Type

// Rows as `pg` and PGlite give them: bigint columns arrive as strings (pg) or numbers/bigints (PGlite), so amounts
// go through `amountOf`; timestamptz arrives as a Date.

type Bigint = string | number | bigint

export interface PlanRow {
  readonly id: string
  readonly code: string
  readonly name: string
  readonly description: string
  readonly amount: Bigint
  readonly currency: string
  readonly interval_unit: IntervalUnit
  readonly interval_count: number
  readonly trial_days: number
  readonly active: boolean
  readonly created_at: Date
}

export interface SubscriptionRow {
  readonly id: string
  readonly customer_id: string
  readonly plan_id: string
  readonly status: SubscriptionStatus
  readonly current_period_start: Date
  readonly current_period_end: Date
  readonly trial_end: Date | null
  readonly cancel_at_period_end: boolean
  readonly canceled_at: Date | null
  readonly test_clock_id: string | null
  readonly seq: Bigint
  readonly created_at: Date
}

export interface InvoiceRow {
  readonly id: string
  readonly number: string | null
  readonly subscription_id: string
  readonly customer_id: string
  readonly status: InvoiceStatus
  readonly reason: "subscription_create" | "subscription_cycle"
  readonly currency: string
  /** jsonb: `Line`s as stored (amounts are numbers within Money.MAX_AMOUNT). */
  readonly lines: ReadonlyArray<Line>
  readonly subtotal: Bigint
  readonly total: Bigint
  readonly amount_paid: Bigint
  readonly amount_due: Bigint
  readonly period_start: Date
  readonly period_end: Date
  readonly attempts: number
  readonly next_attempt_at: Date | null
  readonly paid_at: Date | null
  readonly created_at: Date
}

/** A stored amount as a number: every amount billing writes is within Money.MAX_AMOUNT, so this is exact. */
export const amountOf = (value: Bigint): number => Number(value)

const iso = (date: Date) => date.toISOString()
const isoOrNull = (date: Date | null) => (date === null ? null : date.toISOString())

export const toPlan = (row: PlanRow): Plan => ({
  id: row.id,
  code: row.code,
  name: row.name,
  description: row.description,
  amount: amountOf(row.amount),
  currency: row.currency as Currency,
  interval: row.interval_unit,
  intervalCount: row.interval_count,
  trialDays: row.trial_days,
  active: row.active,
  createdAt: iso(row.created_at),
})

export const toSubscription = (row: SubscriptionRow): Subscription => ({
  id: row.id,
  customerId: row.customer_id,
  planId: row.plan_id,
  status: row.status,
  currentPeriodStart: iso(row.current_period_start),
  currentPeriodEnd: iso(row.current_period_end),
  trialEnd: isoOrNull(row.trial_end),
  cancelAtPeriodEnd: row.cancel_at_period_end,
  canceledAt: isoOrNull(row.canceled_at),
  createdAt: iso(row.created_at),
})

export const toInvoice = (row: InvoiceRow): Invoice => ({
  id: row.id,
  number: row.number,
  subscriptionId: row.subscription_id,
  customerId: row.customer_id,
  status: row.status,
  currency: row.currency as Currency,
  lines: row.lines,
  subtotal: amountOf(row.subtotal),
  total: amountOf(row.total),
  amountPaid: amountOf(row.amount_paid),
  amountDue: amountOf(row.amount_due),
  periodStart: iso(row.period_start),
  periodEnd: iso(row.period_end),
  attempts: row.attempts,
  nextAttemptAt: isoOrNull(row.next_attempt_at),
  paidAt: isoOrNull(row.paid_at),
  createdAt: iso(row.created_at),
})
