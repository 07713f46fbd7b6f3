import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CloudEvent from "../../shared/CloudEvent.ts"
import type { Db } from "../../shared/Db.ts"
import type * as Outbox from "../../shared/Outbox.ts"
import { eventually, freshSchema, type Running, sql, start } from "../../shared/testing/harness.ts"
import { type AnalyticsUnderTest, freshAnalyticsSchema, startAnalytics } from "./testing/analyticsApp.ts"
import { overviewOf, postPublished, producerLayer, publisher, signupsLoginsAndAPost } from "./testing/platformEvents.ts"

// Platform events counted by analytics through the bus's inbox on the real Postgres: a producer's outbox (as every
// function's), the embedded bus reading it; each event counted once under its type with its actor, through a restart
// whose consumer reads the topic again from the start; billing's events giving active subscriptions and MRR.

const reader = randomUUID()
let producer: Running<Db | Outbox.Outbox>
let analytics: AnalyticsUnderTest
let schema: string
let env: Record<string, string>

const publish = publisher(() => producer.context)
const overview = () => overviewOf(analytics, reader)

const users = Array.from({ length: 30 }, () => randomUUID())
const [monthly, yearly] = [randomUUID(), randomUUID()]
const [a, b, c, d] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()]
const subscription = (type: string, id: string, customer: string, sequence: number, data: Record<string, unknown>) => ({
  type,
  subject: id,
  data: { subscriptionId: id, customerId: customer, sequence, ...data },
})

beforeAll(async () => {
  const producerDb = freshSchema("t_aprod")
  producer = await start(producerLayer(producerDb))
  schema = freshAnalyticsSchema()
  env = { ANALYTICS_TOPICS: CloudEvent.topicOf(producerDb.schema), ANALYTICS_CONSUMER_GROUP: schema }
  analytics = await startAnalytics({ readers: [reader], schema, env })
}, 60_000)
afterAll(async () => {
  await analytics?.close()
  await producer?.close()
})

describe("platform events", () => {
  it("counts signups, logins and posts under their types with their actors, once through a restart", async () => {
    await publish(signupsLoginsAndAPost(users, 20))
    await eventually("the events are counted", async () => (await overview()).posts === 1, 30_000)
    const seen = await overview()
    expect(seen).toMatchObject({ signups: 30, logins: 20, posts: 1, activeUsers: { day: 30, week: 30, month: 30 } })
    // The actor is the user; what identifies a person (the email) is not kept.
    const [signup] = await sql(
      `SELECT user_id, properties, platform FROM ${schema}.events WHERE name = 'identity.user.created' AND user_id = $1`,
      [users[5]],
    )
    expect(signup).toEqual({
      user_id: users[5],
      properties: { userId: users[5], emailVerified: false },
      platform: true,
    })

    // A restart whose consumer reads the topic again from its start (its offsets lost): every event comes again, and
    // the inbox (and the ids' unique key) keeps the counts; new events after it are counted.
    await analytics.close()
    await sql(`UPDATE ${schema}.eventbus_offsets SET last_txid = '0', last_seq = 0`)
    analytics = await startAnalytics({ readers: [reader], schema, env })
    await publish([postPublished(users[1]!)])
    await eventually("the new event is counted", async () => (await overview()).posts === 2, 30_000)
    await eventually("the topic was read again", async () => {
      const [row] = await sql(`SELECT count(*)::int AS n FROM ${schema}.eventbus_offsets WHERE last_seq > 0`)
      return row!.n === 1
    })
    expect(await overview()).toMatchObject({ signups: 30, logins: 20, posts: 2 })
    const [stored] = await sql(`SELECT count(*)::int AS n FROM ${schema}.events WHERE platform`)
    expect(stored!.n).toBe(52)
  }, 90_000)

  it("follows billing's events: active subscriptions and MRR from the plans' prices, in each subscription's order", async () => {
    const plan = (planId: string, amount: number, interval: string) => ({
      type: "billing.plan.created",
      subject: planId,
      data: {
        planId,
        code: interval,
        name: interval,
        amount,
        currency: "EUR",
        interval,
        intervalCount: 1,
        active: true,
      },
    })
    await publish([plan(monthly, 1_000, "month"), plan(yearly, 24_000, "year")])
    const created = { planId: monthly, status: "incomplete", amount: 1_000, currency: "EUR" }
    await publish([
      subscription("billing.subscription.created", a, users[0]!, 1, created),
      subscription("billing.invoice.paid", a, users[0]!, 2, { subscriptionStatus: "active", total: 1_000 }),
      subscription("billing.subscription.created", b, users[1]!, 1, { ...created, status: "active" }),
      subscription("billing.subscription.plan_changed", b, users[1]!, 2, { fromPlanId: monthly, toPlanId: yearly }),
      subscription("billing.subscription.created", c, users[2]!, 1, { ...created, status: "active" }),
      subscription("billing.subscription.canceled", c, users[2]!, 2, { status: "canceled", atPeriodEnd: false }),
      subscription("billing.subscription.created", d, users[3]!, 1, { ...created, status: "active" }),
      subscription("billing.subscription.past_due", d, users[3]!, 2, { status: "past_due" }),
      // Late: an older event of a changes nothing.
      subscription("billing.subscription.past_due", a, users[0]!, 1, { status: "past_due" }),
    ])
    await eventually("billing's events are followed", async () => (await overview()).subscriptions.active === 3, 30_000)
    // a monthly 1,000, b yearly 24,000 (2,000 a month), d past due monthly 1,000; c canceled.
    expect((await overview()).mrr).toEqual({ amount: 4_000, currency: "EUR" })
    const timeseries = await fetch(
      `${analytics.url}/api/v1/analytics/top?event=billing.subscription.created&property=planId&from=${new Date(Date.now() - 3_600_000).toISOString()}&to=${new Date(Date.now() + 60_000).toISOString()}`,
      { headers: await analytics.as(reader) },
    )
    expect(await timeseries.json()).toEqual({ items: [{ value: monthly, count: 4 }] })
  }, 60_000)
})
