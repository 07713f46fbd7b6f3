import { execFile } from "node:child_process"
import { randomBytes } from "node:crypto"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as CloudEvent from "./CloudEvent.ts"
import { Db } from "./Db.ts"
import { Kafka, tryKafka } from "./Kafka.ts"
import * as KafkaEventBus from "./KafkaEventBus.ts"
import { readTopic, serviceDb, testKafka, waitUntil } from "./testing/busHarness.ts"

const fastRetry = { maxAttempts: 3, baseDelay: "20 millis", maxDelay: "100 millis" } as const

// A consumer service with its Kafka bus, a fresh topic (and DLQ), and a raw producer writing straight to the topic.
const setup = Effect.gen(function* () {
  const consumer = yield* serviceDb("t_cons")
  const kafka = yield* testKafka
  const topic = CloudEvent.topicOf(`t_${randomBytes(5).toString("hex")}`)
  yield* kafka.ensureTopics([topic, CloudEvent.dlqOf(topic)])
  const bus = yield* KafkaEventBus.make({ retry: fastRetry }).pipe(
    Effect.provideService(Db, consumer),
    Effect.provideService(Kafka, kafka),
  )
  const producer = yield* kafka.producer()
  yield* tryKafka("connect", () => producer.connect())
  const send = (key: string, value: string, partition?: number) =>
    tryKafka("send", () =>
      producer.send({ topic, messages: [{ key, value, partition, headers: { traceparent: TRACEPARENT } }] }),
    )
  // Several messages in one request, so that they arrive in one fetched batch.
  const sendAll = (messages: ReadonlyArray<{ key: string; value: string }>, partition: number) =>
    tryKafka("send", () => producer.send({ topic, messages: messages.map((message) => ({ ...message, partition })) }))
  return { consumer, kafka, topic, bus, producer, send, sendAll }
})

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

const event = (type: string, n: number) =>
  CloudEvent.make({ source: "test", type, subject: "k", data: { n }, traceparent: TRACEPARENT })

describe("KafkaEventBus", () => {
  it.live(
    "dead-letters a poison event after its retries and an undecodable message at once",
    () =>
      Effect.gen(function* () {
        const { kafka, topic, bus, send } = yield* setup
        const calls = new Map<string, number>()
        const handled: Array<number> = []
        yield* bus.subscribe({
          topic,
          group: `g-${topic}`,
          handler: (e) =>
            Effect.gen(function* () {
              calls.set(e.type, (calls.get(e.type) ?? 0) + 1)
              if (e.type === "test.item.poisoned") return yield* Effect.fail(new Error("cannot digest"))
              handled.push((e.data as { n: number }).n)
            }),
        })

        const poison = event("test.item.poisoned", 1)
        yield* send("k", JSON.stringify(event("test.item.created", 0)))
        yield* send("k", JSON.stringify(poison))
        yield* send("k", "{ this is not json")
        yield* send("k", JSON.stringify({ specversion: "1.0", id: "x" }))
        yield* send("k", JSON.stringify(event("test.item.created", 2)))

        const dead = yield* readTopic(kafka, CloudEvent.dlqOf(topic), 3)
        const header = (i: number, name: string) => KafkaEventBus.header(dead[i]!, name)
        assert.strictEqual(dead[0]?.value?.toString(), JSON.stringify(poison))
        assert.strictEqual(header(0, KafkaEventBus.DlqHeaders.reason), "handler-failed")
        assert.strictEqual(header(0, KafkaEventBus.DlqHeaders.attempts), "3")
        assert.include(header(0, KafkaEventBus.DlqHeaders.error), "cannot digest")
        assert.strictEqual(header(0, KafkaEventBus.DlqHeaders.topic), topic)
        assert.strictEqual(header(0, KafkaEventBus.DlqHeaders.offset), "1")
        assert.match(header(0, KafkaEventBus.DlqHeaders.partition) ?? "", /^\d+$/)
        assert.strictEqual(header(0, "traceparent"), TRACEPARENT)
        assert.strictEqual(dead[1]?.value?.toString(), "{ this is not json")
        assert.strictEqual(header(1, KafkaEventBus.DlqHeaders.reason), "undecodable")
        assert.strictEqual(header(1, KafkaEventBus.DlqHeaders.attempts), "0")
        assert.include(header(1, KafkaEventBus.DlqHeaders.error), "not JSON")
        assert.strictEqual(header(2, KafkaEventBus.DlqHeaders.reason), "undecodable")
        assert.include(header(2, KafkaEventBus.DlqHeaders.error), "not a CloudEvent")

        yield* waitUntil("event 2", () => handled.includes(2))
        assert.deepStrictEqual(handled, [0, 2])
        assert.strictEqual(calls.get("test.item.poisoned"), 3)
      }),
    60_000,
  )

  it.live(
    "a failing handler mid-batch is retried and dead-lettered alone while the others' effects commit once, in order",
    () =>
      Effect.gen(function* () {
        const { consumer, kafka, topic, bus, sendAll } = yield* setup
        yield* consumer.query(`CREATE TABLE ${consumer.schema}.effects (n integer NOT NULL)`)
        yield* sendAll(
          [0, 1, 2, 3, 4].map((n) => ({
            key: "k",
            value: JSON.stringify(event(n === 2 ? "test.item.poisoned" : "test.item.created", n)),
          })),
          0,
        )
        const handled: Array<number> = []
        let poisonCalls = 0
        // What another session sees of the effects each time the poisoned event's handler runs.
        const seenByOthers: Array<number> = []
        yield* bus.subscribe({
          topic,
          group: `g-${topic}`,
          handler: (e) =>
            Effect.gen(function* () {
              const n = (e.data as { n: number }).n
              yield* consumer.query(`INSERT INTO ${consumer.schema}.effects (n) VALUES ($1)`, [n])
              if (e.type === "test.item.poisoned") {
                poisonCalls++
                const { rows } = yield* Effect.promise(() =>
                  consumer.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${consumer.schema}.effects`),
                )
                seenByOthers.push(rows[0]?.n ?? -1)
                return yield* Effect.fail(new Error("cannot digest"))
              }
              handled.push(n)
            }),
        })
        const dead = yield* readTopic(kafka, CloudEvent.dlqOf(topic), 1)
        assert.strictEqual(KafkaEventBus.header(dead[0]!, KafkaEventBus.DlqHeaders.offset), "2")
        assert.strictEqual(KafkaEventBus.header(dead[0]!, KafkaEventBus.DlqHeaders.attempts), "3")
        // Committed, not only handled: event 4's write commits with its batch's transaction, after its handler ran.
        yield* waitUntil(
          "event 4's effect committed",
          Effect.map(
            consumer.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${consumer.schema}.effects WHERE n = 4`),
            (rows) => rows[0]?.n === 1,
          ),
        )
        assert.deepStrictEqual(handled, [0, 1, 3, 4])
        assert.strictEqual(poisonCalls, 3)
        // Its retries ran alone, once the events before it had committed.
        assert.deepStrictEqual(seenByOthers.slice(1), [2, 2])
        const effects = yield* consumer.query<{ n: number }>(`SELECT n FROM ${consumer.schema}.effects ORDER BY n`)
        assert.deepStrictEqual(
          effects.map((row) => row.n),
          [0, 1, 3, 4],
        )
      }),
    60_000,
  )

  it.live(
    "hands an event delivered twice to the handler once",
    () =>
      Effect.gen(function* () {
        const { consumer, topic, bus, send } = yield* setup
        const twice = event("test.item.created", 1)
        yield* send("k", JSON.stringify(twice), 0)
        yield* send("k", JSON.stringify(twice), 0)
        yield* send("k", JSON.stringify(event("test.item.created", 2)), 0)

        const handled: Array<number> = []
        const group = `g-${topic}`
        const handler = (e: CloudEvent.CloudEvent) => Effect.sync(() => void handled.push((e.data as { n: number }).n))
        yield* bus.subscribe({ topic, group, handler })
        yield* waitUntil("the event after the duplicate", () => handled.includes(2))
        assert.deepStrictEqual(handled, [1, 2])

        // Again on another partition: the inbox, not the partition's order, is what dedupes.
        yield* send("k", JSON.stringify(twice), 1)
        yield* send("k", JSON.stringify(event("test.item.created", 3)), 1)
        yield* waitUntil("event 3", () => handled.includes(3))
        assert.deepStrictEqual(handled, [1, 2, 3])
        // Its inbox row commits with its batch's transaction, just after its handler ran.
        const inboxed = consumer.query<{ count: number }>(
          `SELECT count(*)::int AS count FROM ${consumer.schema}.inbox WHERE consumer = $1`,
          [group],
        )
        yield* waitUntil(
          "event 3's inbox row committed",
          Effect.map(inboxed, (rows) => rows[0]?.count === 3),
        )
        yield* Effect.sleep("300 millis")
        assert.strictEqual((yield* inboxed)[0]?.count, 3)
      }),
    60_000,
  )

  it.live(
    "a broadcast subscription replays the events of `since` ago and says it caught up once those sent before it are handled",
    () =>
      Effect.gen(function* () {
        const { topic, bus, producer } = yield* setup
        const sendAt = (n: number, timestamp: number) =>
          tryKafka("send", () =>
            producer.send({
              topic,
              messages: [
                {
                  key: `k${n}`,
                  value: JSON.stringify(event("test.item.created", n)),
                  partition: n % 3,
                  timestamp: String(timestamp),
                },
              ],
            }),
          )
        // Older than `since` on every partition: not replayed.
        for (let n = 0; n < 3; n++) yield* sendAt(n, Date.now() - 2 * 3_600_000)
        for (let n = 3; n < 30; n++) yield* sendAt(n, Date.now())
        const seen: Array<number> = []
        let seenWhenCaughtUp: ReadonlyArray<number> | undefined
        yield* bus.subscribe({
          topic,
          group: `g-${topic}`,
          broadcast: {
            since: "1 hour",
            onCaughtUp: Effect.sync(() => {
              seenWhenCaughtUp = [...seen]
            }),
          },
          handler: (e) => Effect.sync(() => void seen.push((e.data as { n: number }).n)),
        })
        yield* waitUntil("the replay to catch up", () => seenWhenCaughtUp !== undefined)
        assert.deepStrictEqual(
          [...(seenWhenCaughtUp ?? [])].sort((a, b) => a - b),
          Array.from({ length: 27 }, (_, i) => i + 3),
        )
        yield* sendAt(30, Date.now())
        yield* waitUntil("an event after the replay", () => seen.includes(30))
        assert.notInclude(seen, 0)
      }),
    60_000,
  )

  it.live(
    "kafkajs neither warns about negative timeouts nor spins a timer on an idle connection (patches/kafkajs)",
    () =>
      Effect.gen(function* () {
        // A fresh process: Node warns once per process, and this one's kafkajs has already been busy.
        const probe = fileURLToPath(new URL("./testing/kafkaIdleProbe.ts", import.meta.url))
        const { stdout, stderr } = yield* Effect.promise(() =>
          promisify(execFile)(process.execPath, [probe], { env: process.env, timeout: 30_000 }),
        )
        const { warnings, idleChecks } = JSON.parse(stdout) as { warnings: Array<string>; idleChecks: number }
        assert.deepStrictEqual(warnings, [])
        assert.notInclude(stderr, "TimeoutNegativeWarning")
        // Unpatched, every idle connection re-armed a 1 ms timer: about a thousand checks a second each.
        assert.isBelow(idleChecks, 20)
      }),
    60_000,
  )
})
