import { randomBytes } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer } from "effect"
import * as CloudEvent from "./CloudEvent.ts"
import * as Cfg from "./Config.ts"
import { Db } from "./Db.ts"
import { Kafka } from "./Kafka.ts"
import * as KafkaEventBus from "./KafkaEventBus.ts"
import { Outbox } from "./Outbox.ts"
import { OutboxRelay } from "./OutboxRelay.ts"
import { readTopic, serviceDb, waitUntil } from "./testing/busHarness.ts"

const brokers = () => {
  const list = process.env.KAFKA_BROKERS
  if (!list) throw new Error("KAFKA_BROKERS is not set: run the tests through `npm test` (it starts the servers)")
  return list.split(",")
}

const kafkaWith = (topicPrefix: string) =>
  Effect.map(
    Layer.build(Kafka.layer({ brokers: brokers(), clientId: "test", partitions: 3, topicPrefix })),
    (context) => Context.get(context, Kafka),
  )

/**
 * One environment on the shared cluster: a producer publishing `service`'s events through its outbox and relay, and a
 * consumer with its Kafka bus, all with the environment's prefix.
 */
const environment = (prefix: string, service: string) =>
  Effect.gen(function* () {
    const kafka = yield* kafkaWith(prefix)
    const producer = yield* serviceDb("t_envp")
    const consumer = yield* serviceDb("t_envc")
    const outbox = Context.get(
      yield* Layer.build(Outbox.layer(service).pipe(Layer.provide(Layer.succeed(Db, producer)))),
      Outbox,
    )
    yield* Layer.build(
      OutboxRelay.layer({ pollInterval: "50 millis", topics: [CloudEvent.topicOf(service)] }).pipe(
        Layer.provide(Layer.succeed(Db, producer)),
        Layer.provide(Layer.succeed(Kafka, kafka)),
      ),
    )
    const bus = yield* KafkaEventBus.make({
      retry: { maxAttempts: 2, baseDelay: "20 millis", maxDelay: "50 millis" },
    }).pipe(Effect.provideService(Db, consumer), Effect.provideService(Kafka, kafka))
    const publish = (n: number, type = "test.item.created") =>
      producer.transaction(outbox.publish({ type, subject: `k${n}`, data: { n } }))
    return { kafka, bus, publish }
  })

const listed = (kafka: Kafka["Service"]) =>
  kafka.admin("listing", async (admin) => ({
    topics: await admin.listTopics(),
    groups: (await admin.listGroups()).groups.map((g) => g.groupId),
  }))

describe("Kafka environments (KAFKA_TOPIC_PREFIX)", () => {
  it.live(
    "two environments on one cluster publish the same topic and each consumer sees only its own events",
    () =>
      Effect.gen(function* () {
        const id = randomBytes(4).toString("hex")
        const service = `t_${id}`
        const topic = CloudEvent.topicOf(service)
        const group = `g_${id}`
        const staging = yield* environment(`t${id}-staging.`, service)
        const production = yield* environment(`t${id}-production.`, service)

        const seen = { staging: [] as Array<number>, production: [] as Array<number> }
        const follow = (env: typeof staging, into: Array<number>) =>
          env.bus.subscribe({
            topic,
            group,
            handler: (event) =>
              event.type === "test.item.poisoned"
                ? Effect.fail(new Error("cannot digest"))
                : Effect.sync(() => void into.push((event.data as { n: number }).n)),
          })
        yield* follow(staging, seen.staging)
        yield* follow(production, seen.production)
        // A broadcast subscription too: its group of its own carries the prefix as well.
        yield* staging.bus.subscribe({
          topic,
          group: `b_${id}`,
          broadcast: { since: "1 hour" },
          handler: () => Effect.void,
        })

        yield* staging.publish(1)
        yield* staging.publish(2, "test.item.poisoned")
        yield* staging.publish(3)
        yield* production.publish(101)
        yield* production.publish(102)
        yield* waitUntil("staging's events", () => seen.staging.length >= 2, "30 seconds")
        yield* waitUntil("production's events", () => seen.production.length >= 2, "30 seconds")
        // Each environment's dead letters stay in it.
        const dead = yield* readTopic(staging.kafka, staging.kafka.topic(CloudEvent.dlqOf(topic)), 1)
        assert.strictEqual(KafkaEventBus.header(dead[0]!, KafkaEventBus.DlqHeaders.topic), staging.kafka.topic(topic))
        assert.strictEqual(KafkaEventBus.header(dead[0]!, KafkaEventBus.DlqHeaders.group), staging.kafka.group(group))
        assert.include(dead[0]?.value?.toString() ?? "", "test.item.poisoned")
        yield* Effect.sleep("500 millis")
        assert.deepStrictEqual(
          seen.staging.sort((a, b) => a - b),
          [1, 3],
        )
        assert.deepStrictEqual(
          seen.production.sort((a, b) => a - b),
          [101, 102],
        )

        // On the cluster: the prefixed names only, never the platform's own.
        const { topics, groups } = yield* listed(staging.kafka)
        assert.includeMembers(topics, [
          `t${id}-staging.${topic}`,
          `t${id}-staging.${topic}.dlq`,
          `t${id}-production.${topic}`,
          `t${id}-production.${topic}.dlq`,
        ])
        assert.notInclude(topics, topic)
        assert.notInclude(topics, CloudEvent.dlqOf(topic))
        assert.includeMembers(groups, [`t${id}-staging.${group}`, `t${id}-production.${group}`])
        assert.notInclude(groups, group)
        assert.isTrue(groups.some((g) => g.startsWith(`t${id}-staging.b_${id}.`)))
        assert.isFalse(groups.some((g) => g.startsWith(`b_${id}`)))
      }).pipe(Effect.scoped),
    90_000,
  )

  it.live("a prefix that makes a topic name longer than Kafka accepts stops the subscription at start", () =>
    Effect.gen(function* () {
      const kafka = yield* kafkaWith("p".repeat(240))
      const consumer = yield* serviceDb("t_envc")
      const bus = yield* KafkaEventBus.make().pipe(
        Effect.provideService(Db, consumer),
        Effect.provideService(Kafka, kafka),
      )
      // `…x.events` fits (248 characters), its dead-letter topic `…x.events.dlq` does not (252).
      const exit = yield* Effect.exit(bus.subscribe({ topic: "x.events", group: "g", handler: () => Effect.void }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(exit), "KAFKA_TOPIC_PREFIX")
      assert.include(String(exit), "x.events.dlq is 252 characters")
    }).pipe(Effect.scoped),
  )

  it.effect("KAFKA_TOPIC_PREFIX is validated at start with the other keys: only Kafka's topic characters", () =>
    Effect.gen(function* () {
      // As a function loads its keys: from the process's environment (a problem names the key and what is expected).
      const load = (value: string | undefined) =>
        Effect.acquireUseRelease(
          Effect.sync(() => {
            const before = process.env.KAFKA_TOPIC_PREFIX
            if (value === undefined) delete process.env.KAFKA_TOPIC_PREFIX
            else process.env.KAFKA_TOPIC_PREFIX = value
            return before
          }),
          () =>
            Effect.exit(
              Cfg.load({ prefix: Cfg.kafkaTopicPrefix }).pipe(
                Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv()),
              ),
            ),
          (before) =>
            Effect.sync(() => {
              if (before === undefined) delete process.env.KAFKA_TOPIC_PREFIX
              else process.env.KAFKA_TOPIC_PREFIX = before
            }),
        )
      const loaded = (exit: Exit.Exit<{ readonly prefix: string }, unknown>) =>
        Exit.isSuccess(exit) ? exit.value.prefix : String(exit)
      assert.strictEqual(loaded(yield* load(undefined)), "")
      assert.strictEqual(loaded(yield* load("staging.")), "staging.")
      const bad = yield* load("staging/eu")
      assert.isTrue(Exit.isFailure(bad))
      assert.include(
        String(bad),
        "KAFKA_TOPIC_PREFIX: expected only the characters of Kafka topic names: a-z A-Z 0-9 . _ -",
      )
    }),
  )
})
