import { randomUUID } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CloudEvent from "../../shared/CloudEvent.ts"
import type { Db } from "../../shared/Db.ts"
import { Kafka } from "../../shared/Kafka.ts"
import type * as Outbox from "../../shared/Outbox.ts"
import { OutboxRelay } from "../../shared/OutboxRelay.ts"
import { eventually, freshSchema, type Running, sql, start } from "../../shared/testing/harness.ts"
import { type AnalyticsUnderTest, freshAnalyticsSchema, startAnalytics } from "./testing/analyticsApp.ts"
import { overviewOf, producerLayer, publisher, signupsLoginsAndAPost } from "./testing/platformEvents.ts"

// Platform events counted by analytics from the real Kafka, as in production: a producer's outbox relayed to its topic,
// analytics' consumer group reading it. Each event is counted once through a restart whose consumer group has its
// committed offsets put back to the topic's start (every event delivered again): the bus's inbox and the event ids'
// unique key keep the counts; a new event after the restart is counted.

const brokers = process.env.KAFKA_BROKERS
if (!brokers) throw new Error("KAFKA_BROKERS is not set: run the tests with .env.test (infra/up.sh writes it)")

const reader = randomUUID()
let producer: Running<Db | Outbox.Outbox | Kafka>
let analytics: AnalyticsUnderTest | undefined
let schema: string
let topic: string
let env: Record<string, string>

const kafka = () => Context.get(producer.context, Kafka)

const publish = publisher(() => producer.context)

// Runs `f` with a kafkajs admin client of the test broker.
const withAdmin = async <A>(f: (admin: ReturnType<Kafka["Service"]["client"]["admin"]>) => Promise<A>) => {
  const admin = kafka().client.admin()
  await admin.connect()
  try {
    return await f(admin)
  } finally {
    await admin.disconnect()
  }
}

// The cluster's names of the topic and of analytics' consumer group for it (`<ANALYTICS_CONSUMER_GROUP>:<topic>`).
const physicalTopic = () => kafka().topic(topic)
const physicalGroup = () => kafka().group(`${schema}:${topic}`)

// Per partition: the topic's end (high watermark), and the group's committed offset (-1 when none).
const offsets = () =>
  withAdmin(async (admin) => {
    const ends = await admin.fetchTopicOffsets(physicalTopic())
    const [committed] = await admin.fetchOffsets({ groupId: physicalGroup(), topics: [physicalTopic()] })
    return ends.map(({ partition, high, low }) => ({
      partition,
      low: Number(low),
      high: Number(high),
      committed: Number(committed?.partitions.find((p) => p.partition === partition)?.offset ?? -1),
    }))
  })
const caughtUp = async () => (await offsets()).every((p) => p.high === p.low || p.committed === p.high)

const overview = () => overviewOf(analytics!, reader)
const stored = async () => {
  const [row] = await sql(
    `SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids FROM ${schema}.events WHERE platform`,
  )
  return row as { n: number; ids: number }
}

const startIt = () => startAnalytics({ readers: [reader], schema, env })

beforeAll(async () => {
  const producerDb = freshSchema("t_akprod")
  topic = CloudEvent.topicOf(producerDb.schema)
  producer = await start(
    OutboxRelay.layer({ batchSize: 50, pollInterval: "20 millis" }).pipe(
      Layer.provideMerge(Kafka.layer({ brokers: brokers.split(","), clientId: "analytics-kafka-producer" })),
      Layer.provideMerge(producerLayer(producerDb)),
    ),
  )
  await Effect.runPromise(kafka().ensureTopics([topic, CloudEvent.dlqOf(topic)]))
  schema = freshAnalyticsSchema()
  env = { KAFKA_BROKERS: brokers, ANALYTICS_TOPICS: topic, ANALYTICS_CONSUMER_GROUP: schema }
  analytics = await startIt()
}, 90_000)
afterAll(async () => {
  await analytics?.close()
  await producer?.close()
})

describe("platform events over the real Kafka", () => {
  it("counts each event once through a restart that reads the topic again from its start", async () => {
    const users = Array.from({ length: 12 }, () => randomUUID())
    await publish(signupsLoginsAndAPost(users, 7))
    const published = 12 + 7 + 1
    await eventually("the events are counted", async () => (await stored()).n >= published, 60_000)
    await eventually("analytics' group to commit the topic's end", caughtUp, 30_000)
    expect(await overview()).toMatchObject({ signups: 12, logins: 7, posts: 1, activeUsers: { day: 12 } })
    expect(await stored()).toEqual({ n: published, ids: published })
    expect((await offsets()).reduce((sum, p) => sum + p.high - p.low, 0)).toBe(published)

    // Analytics stopped, its group's committed offsets put back to the topic's start: once started again, every
    // event is delivered again.
    await analytics!.close()
    analytics = undefined
    await eventually(
      "the group's committed offsets to be reset (its members gone)",
      () =>
        withAdmin(async (admin) => {
          const partitions = (await admin.fetchTopicOffsets(physicalTopic())).map(({ partition, low }) => ({
            partition,
            offset: low,
          }))
          return admin.setOffsets({ groupId: physicalGroup(), topic: physicalTopic(), partitions }).then(
            () => true,
            () => false,
          )
        }),
      30_000,
    )
    const reset = await offsets()
    expect(reset.every((p) => p.committed === p.low)).toBe(true)
    expect(reset.some((p) => p.high > p.low)).toBe(true)

    analytics = await startIt()
    const postId = randomUUID()
    await publish([{ type: "blog.post.published", subject: postId, data: { actor: users[1], postId } }])
    await eventually(
      "the new event is stored",
      async () =>
        (await sql(`SELECT 1 FROM ${schema}.events WHERE platform AND properties->>'postId' = $1`, [postId])).length ===
        1,
      60_000,
    )
    // The whole topic read again (its committed offsets at its end: every redelivered event was handled), each event
    // still counted once.
    await eventually("the topic to be read again to its end", caughtUp, 60_000)
    expect(await stored()).toEqual({ n: published + 1, ids: published + 1 })
    await eventually("the new post in the overview", async () => (await overview()).posts >= 2, 5_000)
    expect(await overview()).toMatchObject({ signups: 12, logins: 7, posts: 2, activeUsers: { day: 12 } })
  }, 180_000)
})
