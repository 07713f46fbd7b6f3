// A Kafka outage on a private broker (the shared one keeps serving every other test): the broker is killed (SIGKILL,
// data kept) while a consumer is mid-message, stays away, and comes back. Events written meanwhile go to the outbox;
// consumers must catch up within 5 s of the broker accepting connections again, each event handled once.
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, Option } from "effect"
import { afterAll, beforeAll } from "vitest"
import { type CloudEvent, topicOf } from "./CloudEvent.ts"
import { Db } from "./Db.ts"
import { EventBus } from "./EventBus.ts"
import { Health } from "./Health.ts"
import * as Kernel from "./Kernel.ts"
import { outboxOf, serviceDb, waitUntil } from "./testing/busHarness.ts"
import { type PrivateKafka, privateKafka } from "./testing/privateKafka.ts"

/** The bound: from the broker accepting connections to the consumers having caught up. */
const CATCH_UP_MS = 5_000
const DOWN_MS = 10_000

let broker: PrivateKafka
beforeAll(async () => {
  broker = await privateKafka()
  await broker.start()
}, 120_000)
afterAll(() => broker?.dispose())

const labelOf = (event: CloudEvent) => (event.data as { label: string }).label

describe("Kafka outage", () => {
  it.live(
    "consumers, also one subscribed while the broker was down, catch up within 5 s of its return, each event once",
    () =>
      Effect.gen(function* () {
        const t0 = Date.now()
        const timeline: Array<string> = []
        const mark = (what: string) => void timeline.push(`${((Date.now() - t0) / 1000).toFixed(2)}s ${what}`)
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => console.log(`Kafka outage timeline:\n${timeline.join("\n")}`)),
        )
        // Two functions wired as the kernel wires them (platform defaults, nothing tuned for the test): a producer with
        // its outbox relay and a consumer, each with its own Kafka client and readiness checks.
        const producer = yield* serviceDb("t_kout_p")
        const consumer = yield* serviceDb("t_kout_c")
        const topic = topicOf(producer.schema)
        // Both functions' log lines (kafkajs's included), kept to count the errors an outage logs.
        const logs: Array<{ readonly at: number; readonly level: string; readonly message: unknown }> = []
        const collectLogs = Logger.layer([
          Logger.make(({ logLevel, message }) => void logs.push({ at: Date.now(), level: logLevel, message })),
        ])
        const kernelEvents = (db: Db["Service"], publishes: ReadonlyArray<string>) =>
          Layer.build(
            Kernel.events(
              { name: db.schema, events: { publishes, consumes: ["*"] } },
              { kafkaBrokers: Option.some([broker.broker]) },
            ).pipe(Layer.provideMerge(Health.layer), Layer.provide(Layer.succeed(Db, db)), Layer.provide(collectLogs)),
          )
        const producerContext = yield* kernelEvents(producer, ["test.item.created"])
        const bus = Context.get(yield* kernelEvents(consumer, []), EventBus)
        const readiness = Context.get(producerContext, Health).readiness
        const outbox = yield* outboxOf(producer)
        const publish = (labels: ReadonlyArray<string>) =>
          producer.transaction(
            Effect.forEach(
              labels,
              (label) => outbox.publish({ type: "test.item.created", subject: label, data: { label } }),
              {
                discard: true,
              },
            ),
          )

        // Group A's handler can be held, to have a message in flight when the broker dies.
        let held = false
        const entered = new Set<string>()
        const handled = { a: new Map<string, number>(), b: new Map<string, number>() }
        const count = (map: Map<string, number>, label: string) => map.set(label, (map.get(label) ?? 0) + 1)
        const groupA = `${consumer.schema}-a`
        yield* bus.subscribe({
          topic,
          types: "*",
          group: groupA,
          handler: (event) =>
            Effect.gen(function* () {
              entered.add(labelOf(event))
              while (held) yield* Effect.sleep("20 millis")
              count(handled.a, labelOf(event))
              mark(`A handled ${labelOf(event)}`)
            }),
        })
        const has = (map: Map<string, number>, labels: ReadonlyArray<string>) => () => labels.every((l) => map.has(l))

        const warm = ["warm-0", "warm-1", "warm-2"]
        yield* publish(warm)
        yield* waitUntil("the warm-up events", has(handled.a, warm))

        // In Kafka but not handled yet: one of them is in A's handler when the broker dies.
        held = true
        const before = ["pre-0", "pre-1", "pre-2"]
        yield* publish(before)
        yield* waitUntil(
          "the relay publishing pre-*",
          Effect.map(
            producer.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM ${producer.schema}.outbox WHERE published_at IS NULL`,
            ),
            ([row]) => row?.n === 0,
          ),
        )
        yield* waitUntil("A holding one of pre-*", () => before.some((label) => entered.has(label)))
        yield* Effect.promise(() => broker.kill())
        const downAt = Date.now()
        mark("broker killed")
        held = false

        // Readiness: Kafka "degraded", the function still ready (its routes work; events wait in the outbox).
        const readyStart = Date.now()
        const down = yield* readiness
        const readyMs = Date.now() - readyStart
        mark(`readiness while down: ${JSON.stringify(down)} in ${readyMs} ms`)

        // Writes keep succeeding: the events wait in the outbox.
        const during = ["down-0", "down-1", "down-2"]
        const writeStart = Date.now()
        yield* publish(during)
        const writeMs = Date.now() - writeStart

        // A consumer that starts while the broker is away (a function starting during the outage).
        const groupB = `${consumer.schema}-b`
        yield* Effect.forkScoped(
          bus.subscribe({
            topic,
            types: "*",
            group: groupB,
            handler: (event) =>
              Effect.sync(() => {
                count(handled.b, labelOf(event))
                mark(`B handled ${labelOf(event)}`)
              }),
          }),
        )

        yield* Effect.sleep(DOWN_MS - (Date.now() - downAt))
        yield* Effect.promise(() => broker.start())
        const backAt = Date.now()
        mark("broker accepting connections")
        const after = ["after-0"]
        yield* publish(after)

        const all = [...warm, ...before, ...during, ...after]
        yield* waitUntil("A catching up", has(handled.a, all), "60 seconds")
        const catchUpA = Date.now() - backAt
        yield* waitUntil("B catching up", has(handled.b, all), "60 seconds")
        const catchUpB = Date.now() - backAt
        yield* waitUntil(
          "Kafka ready again",
          Effect.map(readiness, (r) => r.checks.kafka === "ok"),
        )
        const readyAgain = Date.now() - backAt
        const outageLogs = logs.filter((line) => line.at >= downAt)
        const errorLines = outageLogs.filter((line) => line.level === "Error" || line.level === "Fatal")
        const warningLines = outageLogs.filter((line) => line.level === "Warn")
        console.log(
          JSON.stringify({
            kafkaOutage: {
              downMs: backAt - downAt,
              writeMs,
              readyMs,
              catchUpA,
              catchUpB,
              readyAgain,
              errorLines: errorLines.length,
              warningLines: warningLines.length,
            },
          }),
        )

        // Each event handled once (the in-flight one's redelivery is turned away by the inbox), none lost.
        assert.deepStrictEqual(
          Object.fromEntries(handled.a),
          Object.fromEntries(all.map((label) => [label, 1])),
          "group A handled each event once",
        )
        assert.deepStrictEqual(
          Object.fromEntries(handled.b),
          Object.fromEntries(all.map((label) => [label, 1])),
          "group B handled each event once",
        )
        assert.isBelow(writeMs, 1_000, "outbox writes do not wait for Kafka")
        assert.deepStrictEqual(down, { ok: true, checks: { kafka: "degraded" } })
        // An outage is reported, not shouted: kafkajs logged every refused connection as an error (~450 lines).
        assert.isAtMost(errorLines.length, 3, JSON.stringify(errorLines.slice(0, 5).map((line) => line.message)))
        assert.isAtMost(catchUpA, CATCH_UP_MS, "the running consumer caught up within 5 s")
        assert.isAtMost(catchUpB, CATCH_UP_MS, "the consumer started during the outage caught up within 5 s")
      }),
    150_000,
  )
})
