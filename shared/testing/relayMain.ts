// A process running only the outbox relay of one schema, so tests can kill it with SIGKILL mid-batch.
// Env: DATABASE_URL, KAFKA_BROKERS, RELAY_SCHEMA, RELAY_BATCH_SIZE (default 50) and RELAY_COMMIT_DELAY_MS (default 0),
// a pause between the Kafka send and marking the batch published that widens the window a kill has to hit.
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer, Redacted } from "effect"
import type pg from "pg"
import { Db } from "../Db.ts"
import { Kafka } from "../Kafka.ts"
import * as Logging from "../Logging.ts"
import { OutboxRelay } from "../OutboxRelay.ts"

const env = (name: string) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

const commitDelayMs = Number(process.env.RELAY_COMMIT_DELAY_MS ?? 0)

const DelayedCommits = Layer.effect(
  Db,
  Effect.gen(function* () {
    const db = yield* Db
    // The relay's connection, with a pause before the statement that marks a batch published.
    const delayed = (client: pg.PoolClient): pg.PoolClient =>
      Object.assign(Object.create(client), {
        query: (text: string, params?: Array<unknown>) =>
          /SET published_at/.test(text)
            ? new Promise((resolve) => setTimeout(resolve, commitDelayMs)).then(() => client.query(text, params))
            : client.query(text, params),
      })
    return Db.of({ ...db, withConnection: (f) => db.withConnection((client) => f(delayed(client))) })
  }),
)

const DbLive = Db.layer({ url: Redacted.make(env("DATABASE_URL")), schema: env("RELAY_SCHEMA"), poolMax: 2 })

OutboxRelay.layer({ batchSize: Number(process.env.RELAY_BATCH_SIZE ?? 50), pollInterval: "20 millis" }).pipe(
  Layer.provide(Kafka.layer({ brokers: env("KAFKA_BROKERS").split(","), clientId: "relay-main" })),
  Layer.provide(commitDelayMs > 0 ? DelayedCommits.pipe(Layer.provide(DbLive)) : DbLive),
  Layer.provide(Logging.layer({ service: "relay-main", level: "warn" })),
  Layer.launch,
  NodeRuntime.runMain,
)
