import { Effect, Layer } from "effect"
import type { CloudEvent } from "../../shared/CloudEvent.ts"
import { Db } from "../../shared/Db.ts"
import { subscribeEach } from "../../shared/EventBus.ts"
import { MAX_PROPERTIES, MAX_STRING } from "./Api.ts"
import { acceptedWindow, type EventRow, Events } from "./Events.ts"

// Every platform event counts as an event of its type with its actor as the user: `actor` (what every outbox adds from
// the request: the signed-in caller), else the user the event is about (`userId`: a signup has no caller yet), else the
// customer (billing's engine works without a caller). Its scalar facts become its properties, except what identifies
// a person or a request (emails, addresses, tokens, request ids): analytics keeps ids and counts, not personal data.

const text = (value: unknown): string | null =>
  typeof value === "string" && value.length > 0 ? value : typeof value === "number" ? String(value) : null

const PRIVATE = /^(email|ip|requestId|actor|target|name)$|Email$|token|password|secret/i

const recordOf = (data: unknown): Record<string, unknown> =>
  typeof data === "object" && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : {}

/** The user a platform event counts for. */
export const actorOf = (event: CloudEvent): string | null => {
  const data = recordOf(event.data)
  return text(data.actor) ?? text(data.userId) ?? text(data.customerId)
}

/** A platform event as a stored event (no anonymous id; platform: true). */
export const rowOf = (event: CloudEvent): EventRow => {
  const data = recordOf(event.data)
  const properties: Record<string, string | number | boolean | null> = {}
  for (const [key, value] of Object.entries(data)) {
    if (Object.keys(properties).length >= MAX_PROPERTIES) break
    if (PRIVATE.test(key)) continue
    if (typeof value === "string" && value.length <= MAX_STRING) properties[key] = value
    else if ((typeof value === "number" && Number.isFinite(value)) || typeof value === "boolean")
      properties[key] = value
  }
  const time = Date.parse(event.time)
  return {
    id: event.id,
    name: event.type,
    occurredAt: new Date(Number.isNaN(time) ? Date.now() : time),
    userId: actorOf(event),
    anonymousId: null,
    properties,
    platform: true,
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * Billing's plans and subscriptions as their events tell them (the overview's active subscriptions and MRR): a plan's
 * price from billing.plan.*, a subscription's plan and status from billing.subscription.* and billing.invoice.paid,
 * each applied only when its sequence is past the one stored (a late or repeated event changes nothing).
 */
const followBilling = (event: CloudEvent) =>
  Effect.gen(function* () {
    const db = yield* Db
    const s = db.schema
    const data = recordOf(event.data)
    if (event.type === "billing.plan.created" || event.type === "billing.plan.updated") {
      const { planId, amount, currency, interval, intervalCount } = data
      if (
        typeof planId !== "string" ||
        !UUID.test(planId) ||
        typeof amount !== "number" ||
        typeof currency !== "string" ||
        typeof interval !== "string" ||
        typeof intervalCount !== "number"
      )
        return
      yield* db.query(
        `INSERT INTO ${s}.billing_plans (id, amount, currency, interval, interval_count) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET amount = excluded.amount, currency = excluded.currency,
           interval = excluded.interval, interval_count = excluded.interval_count`,
        [planId, amount, currency, interval, intervalCount],
      )
      return
    }
    const id = data.subscriptionId
    const sequence = data.sequence
    if (typeof id !== "string" || !UUID.test(id) || typeof sequence !== "number") return
    const status =
      event.type === "billing.invoice.paid"
        ? text(data.subscriptionStatus)
        : event.type.startsWith("billing.subscription.")
          ? text(data.status)
          : null
    const plan =
      event.type === "billing.subscription.created"
        ? text(data.planId)
        : event.type === "billing.subscription.plan_changed"
          ? text(data.toPlanId)
          : null
    if (status === null && plan === null) return
    yield* db.query(
      `INSERT INTO ${s}.billing_subscriptions (id, customer_id, plan_id, status, sequence) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (id) DO UPDATE SET
         customer_id = COALESCE(excluded.customer_id, billing_subscriptions.customer_id),
         plan_id = COALESCE(excluded.plan_id, billing_subscriptions.plan_id),
         status = COALESCE(excluded.status, billing_subscriptions.status),
         sequence = excluded.sequence, updated_at = now()
       WHERE excluded.sequence > billing_subscriptions.sequence`,
      [id, text(data.customerId), plan !== null && UUID.test(plan) ? plan : null, status, sequence],
    )
  })

/** What the consumer reads: the topics, and the prefix of its consumer groups (one group per topic). */
export interface PlatformEventsOptions {
  readonly topics: ReadonlyArray<string>
  readonly group: string
  readonly rawRetentionDays: number
}

/**
 * Counts every event of the given topics, one subscription (and consumer group) per topic, each exactly once: the
 * bus's inbox skips a redelivered event id within the transaction that writes it, and the event id's unique key
 * (event_ids) keeps the first anyway. An event older than the raw retention is not counted (its partition is gone).
 */
export const layer = (options: PlatformEventsOptions) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const events = yield* Events
      yield* subscribeEach({
        topics: options.topics,
        group: options.group,
        handler: (event) =>
          Effect.gen(function* () {
            const row = rowOf(event)
            const window = acceptedWindow(Date.now(), options.rawRetentionDays)
            const t = row.occurredAt.getTime()
            if (UUID.test(row.id) && t >= window.from && t <= window.to) yield* events.insert([row])
            if (event.type.startsWith("billing.")) yield* followBilling(event)
          }),
      })
    }),
  )
