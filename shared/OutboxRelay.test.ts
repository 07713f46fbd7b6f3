import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { type CloudEvent, make, topicOf } from "./CloudEvent.ts"
import { Db } from "./Db.ts"
import { Kafka } from "./Kafka.ts"
import * as KafkaEventBus from "./KafkaEventBus.ts"
import { channelOf } from "./Outbox.ts"
import { OutboxRelay } from "./OutboxRelay.ts"
import { messageCount, outboxOf, readTopic, serviceDb, testKafka, waitUntil } from "./testing/busHarness.ts"

interface Item {
  readonly key: string
  readonly n: number
}

const fastRetry = { maxAttempts: 3, baseDelay: "20 millis", maxDelay: "100 millis" } as const

const publishedCount = (db: Db["Service"]) =>
  Effect.map(
    db.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM ${db.schema}.outbox WHERE published_at IS NOT NULL`,
    ),
    ([row]) => row?.count ?? 0,
  )

// Writes `count` events over `keys` aggregates, `perTx` to a transaction, each inside a span (so it carries a traceparent).
const publishItems = (db: Db["Service"], count: number, keys: number, perTx: number) =>
  Effect.gen(function* () {
    const outbox = yield* outboxOf(db)
    for (let start = 0; start < count; start += perTx) {
      yield* db
        .transaction(
          Effect.forEach(
            Array.from({ length: Math.min(perTx, count - start) }, (_, i) => start + i),
            (n) => {
              const key = `k${n % keys}`
              return outbox.publish({ type: "test.item.created", subject: key, data: { key, n } satisfies Item })
            },
            { discard: true },
          ),
        )
        .pipe(Effect.withSpan("test.publish"))
    }
  })

// Until the relay's connection is LISTENing on the outbox's channel (its last statement, now idle).
const listening = (db: Db["Service"]) =>
  waitUntil(
    "the relay listening",
    Effect.map(
      db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity
         WHERE application_name = $1 AND state = 'idle' AND query = $2`,
        [db.schema, `LISTEN "${channelOf(db.schema)}"`],
      ),
      ([row]) => row?.n === 1,
    ),
  )

describe("OutboxRelay", () => {
  it.live(
    "wakes when a publishing transaction commits instead of waiting out its poll, and polls for rows never announced",
    () =>
      Effect.gen(function* () {
        const producer = yield* serviceDb("t_wake")
        const kafka = yield* testKafka
        const topic = topicOf(producer.schema)
        const outbox = yield* outboxOf(producer)
        // A poll far longer than the waits below: only the notification can publish in time.
        yield* Layer.build(OutboxRelay.layer({ pollInterval: "60 seconds", topics: [topic] })).pipe(
          Effect.provideService(Db, producer),
          Effect.provideService(Kafka, kafka),
        )
        yield* listening(producer)
        for (let n = 1; n <= 3; n++) {
          const committedAt = Date.now()
          yield* producer.transaction(outbox.publish({ type: "test.item.created", subject: "k", data: { n } }))
          yield* waitUntil(
            `event ${n} published`,
            Effect.map(publishedCount(producer), (count) => count === n),
            "5 seconds",
          )
          assert.isBelow(Date.now() - committedAt, 5_000)
        }
      }),
    60_000,
  )

  it.live(
    "finds rows written without a notification by polling: notifications are only a hint",
    () =>
      Effect.gen(function* () {
        const producer = yield* serviceDb("t_hint")
        const kafka = yield* testKafka
        const topic = topicOf(producer.schema)
        yield* Layer.build(OutboxRelay.layer({ pollInterval: "200 millis", topics: [topic] })).pipe(
          Effect.provideService(Db, producer),
          Effect.provideService(Kafka, kafka),
        )
        yield* listening(producer)
        // As a row left by a writer that did not notify (or whose notification nobody heard) is.
        const event = make({ source: producer.schema, type: "test.item.created", subject: "k", data: { n: 1 } })
        yield* producer.query(`INSERT INTO ${producer.schema}.outbox (id, topic, key, event) VALUES ($1, $2, $3, $4)`, [
          event.id,
          topic,
          "k",
          JSON.stringify(event),
        ])
        yield* waitUntil(
          "the row published",
          Effect.map(publishedCount(producer), (count) => count === 1),
          "5 seconds",
        )
        const [message] = yield* readTopic(kafka, topic, 1)
        assert.strictEqual(JSON.parse(message!.value!.toString()).id, event.id)
      }),
    60_000,
  )

  it.live(
    "carries outbox rows through Kafka to a consumer, in order per key, continuing the producer's trace",
    () =>
      Effect.gen(function* () {
        const producer = yield* serviceDb("t_relay")
        const consumer = yield* serviceDb("t_cons")
        const kafka = yield* testKafka
        const topic = topicOf(producer.schema)
        yield* publishItems(producer, 200, 5, 10)

        yield* Layer.build(OutboxRelay.layer({ batchSize: 50, pollInterval: "20 millis", topics: [topic] })).pipe(
          Effect.provideService(Db, producer),
          Effect.provideService(Kafka, kafka),
        )
        const bus = yield* KafkaEventBus.make({ retry: fastRetry, partitionsConsumedConcurrently: 3 }).pipe(
          Effect.provideService(Db, consumer),
          Effect.provideService(Kafka, kafka),
        )
        const byKey = new Map<string, Array<number>>()
        const traceMismatches: Array<string> = []
        const handler = (event: CloudEvent) =>
          Effect.gen(function* () {
            const item = event.data as Item
            byKey.set(item.key, [...(byKey.get(item.key) ?? []), item.n])
            const span = yield* Effect.currentSpan
            if (event.traceparent?.split("-")[1] !== span.traceId) traceMismatches.push(event.id)
          })
        yield* bus.subscribe({ topic, group: `${consumer.schema}-g`, handler })

        yield* waitUntil("200 events", () => [...byKey.values()].reduce((sum, ns) => sum + ns.length, 0) >= 200)
        for (let k = 0; k < 5; k++) {
          const expected = Array.from({ length: 40 }, (_, i) => i * 5 + k)
          assert.deepStrictEqual(byKey.get(`k${k}`), expected, `order of k${k}`)
        }
        assert.deepStrictEqual(traceMismatches, [])
        yield* waitUntil(
          "outbox marked published",
          Effect.map(publishedCount(producer), (n) => n === 200),
        )
      }),
    60_000,
  )

  it.live(
    "bounds each send by bytes as well as rows, and goes on at once after a send cut short",
    () =>
      Effect.gen(function* () {
        const producer = yield* serviceDb("t_bytes")
        const kafka = yield* testKafka
        const topic = topicOf(producer.schema)
        const outbox = yield* outboxOf(producer)
        // Six events of ≈ 100 KiB; at most 250 KiB a send: two a send, three sends.
        const padding = "x".repeat(100 * 1024)
        for (let n = 0; n < 6; n++) {
          yield* producer.transaction(outbox.publish({ type: "test.item.created", subject: "k", data: { n, padding } }))
        }
        const started = Date.now()
        // An idle pause far longer than the test's wait: only rounds that go on at once publish everything in time.
        yield* Layer.build(
          OutboxRelay.layer({ batchSize: 50, maxBatchBytes: 250 * 1024, pollInterval: "30 seconds", topics: [topic] }),
        ).pipe(Effect.provideService(Db, producer), Effect.provideService(Kafka, kafka))
        yield* waitUntil(
          "six rows published",
          Effect.map(publishedCount(producer), (n) => n === 6),
          "15 seconds",
        )
        assert.isBelow(Date.now() - started, 15_000)
        // One UPDATE per send: rows of a send share its published_at.
        const sends = yield* producer.query<{ rows: number }>(
          `SELECT count(*)::int AS rows FROM ${producer.schema}.outbox GROUP BY published_at ORDER BY min(seq)`,
        )
        assert.deepStrictEqual(
          sends.map((send) => send.rows),
          [2, 2, 2],
        )
        const messages = yield* readTopic(kafka, topic, 6)
        assert.deepStrictEqual(
          messages.map((m) => (JSON.parse(m.value?.toString() ?? "null") as { data: { n: number } }).data.n),
          [0, 1, 2, 3, 4, 5],
        )
      }),
    60_000,
  )

  it.live(
    "loses nothing when the relay is killed with SIGKILL mid-batch, and the consumer sees no duplicate",
    () =>
      Effect.gen(function* () {
        const producer = yield* serviceDb("t_kill")
        const consumer = yield* serviceDb("t_cons")
        const kafka = yield* testKafka
        const topic = topicOf(producer.schema)
        yield* kafka.ensureTopics([topic, `${topic}.dlq`])
        yield* publishItems(producer, 500, 10, 50)

        const handled = new Map<string, number>()
        const bus = yield* KafkaEventBus.make({ retry: fastRetry, partitionsConsumedConcurrently: 3 }).pipe(
          Effect.provideService(Db, consumer),
          Effect.provideService(Kafka, kafka),
        )
        yield* bus.subscribe({
          topic,
          group: `${consumer.schema}-g`,
          handler: (event) => Effect.sync(() => void handled.set(event.id, (handled.get(event.id) ?? 0) + 1)),
        })

        // First run: each batch waits 400 ms between the Kafka send and its commit; kill it inside that window once
        // two batches are committed, i.e. as soon as the consumer has seen events the outbox has not marked published.
        const first = yield* relayProcess(producer.schema, { RELAY_COMMIT_DELAY_MS: "400" })
        let published = 0
        yield* Effect.gen(function* () {
          while (true) {
            published = yield* publishedCount(producer)
            if (published >= 100 && handled.size > published) return
            yield* Effect.sleep("10 millis")
          }
        }).pipe(Effect.timeout("30 seconds"))
        first.kill("SIGKILL")
        yield* Effect.promise(() => new Promise((resolve) => first.once("exit", resolve)))
        const afterKill = yield* publishedCount(producer)
        assert.isBelow(afterKill, 500)
        assert.isAbove(handled.size, afterKill, "the killed batch reached Kafka without being marked published")

        yield* relayProcess(producer.schema, {})
        yield* waitUntil("all 500 events", () => handled.size >= 500, "40 seconds")
        yield* waitUntil(
          "outbox drained",
          Effect.map(publishedCount(producer), (n) => n === 500),
        )
        const total = yield* messageCount(kafka, topic)
        assert.isAbove(total, 500, "the batch in flight at the kill was published twice")
        // Give the duplicates at the end of the topic time to reach the handler, if they were going to.
        yield* Effect.sleep("500 millis")
        assert.strictEqual(handled.size, 500)
        assert.deepStrictEqual(
          [...handled.values()].filter((count) => count !== 1),
          [],
        )
      }),
    90_000,
  )

  it.live(
    "keeps rows while Kafka is unreachable and publishes them once it is back",
    () =>
      Effect.gen(function* () {
        const producer = yield* serviceDb("t_down")
        const topic = topicOf(producer.schema)
        yield* publishItems(producer, 30, 3, 10)

        // The relay's only broker address is a proxy that refuses connections until it starts listening.
        const proxy = yield* brokerProxy
        const unreachable = Kafka.layer({
          brokers: [`127.0.0.1:${proxy.port}`],
          clientId: "relay-down",
          retry: { retries: 2, initialRetryTime: 50, maxRetryTime: 200 },
        })
        yield* Layer.build(
          OutboxRelay.layer({ batchSize: 50, pollInterval: "20 millis", maxBackoff: "300 millis" }).pipe(
            Layer.provide(unreachable),
          ),
        ).pipe(Effect.provideService(Db, producer))
        yield* Effect.sleep("1500 millis")
        assert.strictEqual(yield* publishedCount(producer), 0)

        yield* proxy.open
        yield* waitUntil(
          "outbox published",
          Effect.map(publishedCount(producer), (n) => n === 30),
        )
        const kafka = yield* testKafka
        const messages = yield* readTopic(kafka, topic, 30)
        const items = messages.map((m) => (JSON.parse(m.value!.toString()) as CloudEvent).data as Item)
        for (const key of ["k0", "k1", "k2"]) {
          const ns = items.filter((item) => item.key === key).map((item) => item.n)
          assert.deepStrictEqual(
            ns,
            [...ns].sort((a, b) => a - b),
            `order of ${key}`,
          )
          assert.strictEqual(ns.length, 10)
        }
      }),
    60_000,
  )
})

// A TCP port that refuses connections until `open`, then forwards them to the test broker.
const brokerProxy = Effect.gen(function* () {
  const [host = "127.0.0.1", brokerPort = "9092"] = (process.env.KAFKA_BROKERS ?? "").split(",")[0]!.split(":")
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(brokerPort), host)
    client.pipe(upstream).pipe(client)
    client.on("error", () => upstream.destroy())
    upstream.on("error", () => client.destroy())
  })
  const port = yield* Effect.promise(
    () =>
      new Promise<number>((resolve) => {
        const probe = net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = probe.address() as net.AddressInfo
          probe.close(() => resolve(port))
        })
      }),
  )
  yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
  const open = Effect.promise(() => new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve)))
  return { port, open }
})

// Spawns shared/testing/relayMain.ts for `schema`; killed (if still running) when the test's scope closes.
const relayProcess = (schema: string, env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child: ChildProcess = spawn(
        process.execPath,
        [fileURLToPath(new URL("testing/relayMain.ts", import.meta.url))],
        {
          env: { ...process.env, RELAY_SCHEMA: schema, RELAY_BATCH_SIZE: "50", ...env },
          stdio: ["ignore", "inherit", "inherit"],
        },
      )
      return child
    }),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")),
  )
