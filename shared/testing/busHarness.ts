import { randomUUID } from "node:crypto"
import { Context, Duration, Effect, Layer } from "effect"
import type kafkajs from "kafkajs"
import { Db } from "../Db.ts"
import { Kafka } from "../Kafka.ts"
import { migrate } from "../Migrator.ts"
import * as Outbox from "../Outbox.ts"
import * as PgEventBus from "../PgEventBus.ts"
import { freshSchema } from "./harness.ts"

/** A service database on a fresh schema with the kernel event tables; the schema is dropped when the scope closes. */
export const serviceDb = (prefix = "t") =>
  Effect.gen(function* () {
    const options = freshSchema(prefix)
    const db = Context.get(yield* Layer.build(Db.layer(options)), Db)
    yield* Effect.addFinalizer(() => db.query(`DROP SCHEMA IF EXISTS ${options.schema} CASCADE`).pipe(Effect.ignore))
    yield* migrate([...Outbox.migrations, ...PgEventBus.migrations]).pipe(Effect.provideService(Db, db))
    return db
  })

/** The outbox of the service owning `db` (it publishes on `<schema>.events`). */
export const outboxOf = (db: Db["Service"]) =>
  Effect.map(Layer.build(Outbox.Outbox.layer(db.schema)), (context) => Context.get(context, Outbox.Outbox)).pipe(
    Effect.provideService(Db, db),
  )

/** Polls `check` (a predicate or an effect) every 25 ms until it holds; dies naming `what` after `timeout`. */
export const waitUntil = <E = never, R = never>(
  what: string,
  check: (() => boolean) | Effect.Effect<boolean, E, R>,
  timeout: Duration.Input = "20 seconds",
) =>
  Effect.gen(function* () {
    const deadline = Date.now() + Duration.toMillis(timeout)
    while (!(Effect.isEffect(check) ? yield* check : check())) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.sleep("25 millis")
    }
  })

/** A Kafka client on the test broker (KAFKA_BROKERS) creating 3-partition topics. */
export const testKafka = Effect.gen(function* () {
  const brokers = process.env.KAFKA_BROKERS
  if (!brokers) throw new Error("KAFKA_BROKERS is not set: run the tests through `npm test` (it starts the servers)")
  const layer = Kafka.layer({ brokers: brokers.split(","), clientId: "test", partitions: 3 })
  return Context.get(yield* Layer.build(layer), Kafka)
})

/** How many messages a topic holds, all partitions together. */
export const messageCount = (kafka: Kafka["Service"], topic: string) =>
  Effect.promise(async () => {
    const admin = kafka.client.admin()
    await admin.connect()
    try {
      const offsets = await admin.fetchTopicOffsets(topic)
      return offsets.reduce((sum, partition) => sum + Number(partition.high) - Number(partition.low), 0)
    } finally {
      await admin.disconnect()
    }
  })

/** Reads a topic from the beginning with a throwaway consumer group until `count` messages arrived. */
export const readTopic = (kafka: Kafka["Service"], topic: string, count: number) =>
  Effect.gen(function* () {
    const messages: Array<kafkajs.KafkaMessage & { readonly partition: number }> = []
    const consumer = kafka.client.consumer({ groupId: `reader-${randomUUID()}`, maxWaitTimeInMs: 500 })
    yield* Effect.acquireRelease(
      Effect.promise(async () => {
        await consumer.connect()
        await consumer.subscribe({ topics: [topic], fromBeginning: true })
        await consumer.run({
          eachMessage: async ({ partition, message }) => void messages.push({ ...message, partition }),
        })
      }),
      () => Effect.promise(() => consumer.disconnect()),
    )
    yield* waitUntil(`${count} messages on ${topic}`, () => messages.length >= count)
    return messages
  }).pipe(Effect.scoped)
