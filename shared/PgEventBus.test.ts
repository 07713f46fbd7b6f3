import { randomUUID } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import pg from "pg"
import type { CloudEvent } from "./CloudEvent.ts"
import * as CloudEventModule from "./CloudEvent.ts"
import { Db, DbError } from "./Db.ts"
import * as PgEventBus from "./PgEventBus.ts"
import { outboxOf, serviceDb, waitUntil } from "./testing/busHarness.ts"

const fastRetry = { maxAttempts: 3, baseDelay: "10 millis", maxDelay: "40 millis" } as const
const numberOf = (event: CloudEvent) => (event.data as { n: number }).n

// A producer and a consumer service, each on its own fresh schema, and the consumer's embedded bus.
const setup = Effect.gen(function* () {
  const producer = yield* serviceDb("t_prod")
  const consumer = yield* serviceDb("t_cons")
  const outbox = yield* outboxOf(producer)
  const bus = yield* PgEventBus.make({ pollInterval: "20 millis", batchSize: 25, retry: fastRetry }).pipe(
    Effect.provideService(Db, consumer),
  )
  const publish = (n: number, type = "test.item.created") =>
    producer.transaction(outbox.publish({ type, subject: `k${n % 4}`, data: { n } }))
  return { producer, consumer, bus, publish, topic: CloudEventModule.topicOf(producer.schema) }
})

describe("PgEventBus", () => {
  it.live("consumes outbox rows in order and hands each event to the handler once", () =>
    Effect.gen(function* () {
      const { consumer, bus, publish, topic } = yield* setup
      for (let n = 0; n < 60; n++) yield* publish(n)

      const seen: Array<number> = []
      const handler = (event: CloudEvent) => Effect.sync(() => void seen.push(numberOf(event)))
      const first = yield* Scope.make()
      yield* bus.subscribe({ topic, group: "g1", handler }).pipe(Scope.provide(first))
      yield* waitUntil("60 events", () => seen.length >= 60)
      assert.deepStrictEqual(
        seen,
        Array.from({ length: 60 }, (_, n) => n),
      )
      yield* Scope.close(first, Exit.void)

      // Forget the position: the whole outbox comes again and the inbox turns every event away.
      yield* consumer.query(`UPDATE ${consumer.schema}.eventbus_offsets SET last_txid = '0', last_seq = 0`)
      const again = yield* Scope.make()
      yield* bus.subscribe({ topic, group: "g1", handler }).pipe(Scope.provide(again))
      yield* publish(60)
      yield* waitUntil("event 60", () => seen.includes(60))
      yield* Scope.close(again, Exit.void)
      assert.deepStrictEqual(
        seen,
        Array.from({ length: 61 }, (_, n) => n),
      )
      const [inbox] = yield* consumer.query<{ count: string }>(
        `SELECT count(*)::text AS count FROM ${consumer.schema}.inbox WHERE consumer = 'g1'`,
      )
      assert.strictEqual(inbox?.count, "61")
    }),
  )

  it.live("retries a failing handler, rolls back its writes and dead-letters poison and undecodable rows", () =>
    Effect.gen(function* () {
      const { producer, consumer, bus, publish, topic } = yield* setup
      yield* consumer.query(`CREATE TABLE ${consumer.schema}.effects (n integer NOT NULL)`)
      const calls = new Map<number, number>()
      const handler = (event: CloudEvent) =>
        Effect.gen(function* () {
          const n = numberOf(event)
          const call = (calls.get(n) ?? 0) + 1
          calls.set(n, call)
          yield* consumer.query(`INSERT INTO ${consumer.schema}.effects (n) VALUES ($1)`, [n])
          if (n === 1 && call < 3) return yield* Effect.fail(new Error(`flaky ${call}`))
          if (n === 2) return yield* Effect.die(new Error("poison"))
        })

      yield* publish(0)
      yield* publish(1)
      yield* publish(2)
      yield* producer.query(`INSERT INTO ${producer.schema}.outbox (id, topic, key, event) VALUES ($1, $2, 'x', $3)`, [
        randomUUID(),
        topic,
        JSON.stringify({ hello: "not an event" }),
      ])
      yield* publish(3)

      yield* bus.subscribe({ topic, group: "g2", handler })
      // Committed, not only handled: event 3's write commits with its batch's transaction, after its handler ran.
      yield* waitUntil(
        "event 3's effect committed",
        Effect.map(
          consumer.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${consumer.schema}.effects WHERE n = 3`),
          (rows) => rows[0]?.n === 1,
        ),
      )

      assert.deepStrictEqual(Object.fromEntries(calls), { 0: 1, 1: 3, 2: 3, 3: 1 })
      const effects = yield* consumer.query<{ n: number }>(`SELECT n FROM ${consumer.schema}.effects ORDER BY n`)
      assert.deepStrictEqual(
        effects.map((row) => row.n),
        [0, 1, 3],
      )
      const dead = yield* consumer.query<{ reason: string; attempts: number; error: string; event_id: string }>(
        `SELECT reason, attempts, error, payload->>'type' AS type FROM ${consumer.schema}.dead_letters ORDER BY id`,
      )
      assert.strictEqual(dead.length, 2)
      assert.strictEqual(dead[0]?.reason, "handler-failed")
      assert.strictEqual(dead[0]?.attempts, 3)
      assert.include(dead[0]?.error, "poison")
      assert.strictEqual(dead[1]?.reason, "undecodable")
      assert.strictEqual(dead[1]?.attempts, 0)
    }),
  )

  it.live("dead-letters a handler that caught a failed statement and went on, and goes on with the next event", () =>
    Effect.gen(function* () {
      const { consumer, bus, publish, topic } = yield* setup
      yield* consumer.query(`CREATE TABLE ${consumer.schema}.effects (n integer NOT NULL)`)
      const handler = (event: CloudEvent) =>
        Effect.gen(function* () {
          const n = numberOf(event)
          // Its transaction is aborted by the failed statement it swallows: Db refuses to commit it (25P02), which
          // is the handler's fault like any failure of its own, not the database being away.
          if (n === 1) return yield* Effect.ignore(consumer.query("SELECT 1 / 0"))
          yield* consumer.query(`INSERT INTO ${consumer.schema}.effects (n) VALUES ($1)`, [n])
        })
      yield* publish(0)
      yield* publish(1)
      yield* publish(2)
      yield* bus.subscribe({ topic, group: "g-aborted", handler })
      yield* waitUntil(
        "event 2's effect committed",
        Effect.map(
          consumer.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${consumer.schema}.effects WHERE n = 2`),
          (rows) => rows[0]?.n === 1,
        ),
      )
      const effects = yield* consumer.query<{ n: number }>(`SELECT n FROM ${consumer.schema}.effects ORDER BY n`)
      assert.deepStrictEqual(
        effects.map((row) => row.n),
        [0, 2],
      )
      const dead = yield* consumer.query<{ reason: string; error: string }>(
        `SELECT reason, error FROM ${consumer.schema}.dead_letters WHERE group_id = 'g-aborted'`,
      )
      assert.strictEqual(dead.length, 1)
      assert.strictEqual(dead[0]?.reason, "handler-failed")
    }),
  )

  it.live("waits for a transaction that commits after a later one instead of skipping its row", () =>
    Effect.gen(function* () {
      const { producer, bus, publish, topic } = yield* setup
      const seen: Array<number> = []
      yield* bus.subscribe({
        topic,
        group: "g3",
        handler: (event) => Effect.sync(() => void seen.push(numberOf(event))),
      })

      // A slow transaction takes seq first; a quick one takes the next seq and commits before it.
      const slow = new pg.Client({ connectionString: process.env.DATABASE_URL })
      yield* Effect.acquireRelease(
        Effect.promise(() => slow.connect()),
        () => Effect.promise(() => slow.end()),
      )
      const early = CloudEventModule.make({ source: producer.schema, type: "test.item.created", data: { n: 100 } })
      yield* Effect.promise(async () => {
        await slow.query("BEGIN")
        await slow.query(`INSERT INTO ${producer.schema}.outbox (id, topic, key, event) VALUES ($1, $2, 'k', $3)`, [
          early.id,
          topic,
          JSON.stringify(early),
        ])
      })
      yield* publish(101)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(seen, [])

      yield* Effect.promise(() => slow.query("COMMIT"))
      yield* waitUntil("both events", () => seen.length >= 2)
      assert.deepStrictEqual(seen, [100, 101])
    }),
  )

  it.live("orders by transaction id as a number: 999 comes before 1000", () =>
    Effect.gen(function* () {
      const { producer, bus, topic } = yield* setup
      // Rows as a fresh cluster writes them when its transaction ids cross from three to four digits.
      for (const [txid, n] of [
        ["999", 1],
        ["1000", 2],
        ["1001", 3],
      ] as const) {
        const event = CloudEventModule.make({ source: producer.schema, type: "test.item.created", data: { n } })
        yield* producer.query(
          `INSERT INTO ${producer.schema}.outbox (id, topic, key, event, txid) VALUES ($1, $2, 'k', $3, $4::xid8)`,
          [event.id, topic, JSON.stringify(event), txid],
        )
      }
      const seen: Array<number> = []
      yield* bus.subscribe({
        topic,
        group: "g4",
        handler: (event) => Effect.sync(() => void seen.push(numberOf(event))),
      })
      yield* waitUntil("three events", () => seen.length >= 3)
      assert.deepStrictEqual(seen, [1, 2, 3])
    }),
  )

  it.live("a database outage met by the handler stalls the event instead of dead-lettering it", () =>
    Effect.gen(function* () {
      const { consumer, bus, publish, topic } = yield* setup
      let calls = 0
      const seen: Array<number> = []
      // More outage failures than the retry policy's attempts (3): counted as attempts, they would dead-letter it.
      const handler = (event: CloudEvent) =>
        ++calls <= 5
          ? Effect.fail(new DbError({ message: "connection terminated", code: "08006", cause: null }))
          : Effect.sync(() => void seen.push(numberOf(event)))
      yield* bus.subscribe({ topic, group: "g5", handler })
      yield* publish(7)
      yield* waitUntil("the event after the outage", () => seen.length >= 1)
      assert.deepStrictEqual(seen, [7])
      const dead = yield* consumer.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM ${consumer.schema}.dead_letters`,
      )
      assert.strictEqual(dead[0]?.n, "0")
    }),
  )

  it.live(
    "a broadcast subscription replays the events of `since` ago and says it caught up once those committed before it are handled",
    () =>
      Effect.gen(function* () {
        const { producer, bus, publish, topic } = yield* setup
        yield* publish(0)
        yield* publish(1)
        // Older than `since`: not replayed.
        yield* producer.query(`UPDATE ${producer.schema}.outbox SET created_at = now() - interval '2 hours'`)
        // More than one poll's batch (25): the replay takes several rounds.
        for (let n = 2; n < 60; n++) yield* publish(n)
        const seen: Array<number> = []
        let seenWhenCaughtUp: ReadonlyArray<number> | undefined
        yield* bus.subscribe({
          topic,
          group: "g6",
          broadcast: {
            since: "1 hour",
            onCaughtUp: Effect.sync(() => {
              seenWhenCaughtUp = [...seen]
            }),
          },
          handler: (event) => Effect.sync(() => void seen.push(numberOf(event))),
        })
        yield* waitUntil("the replay to catch up", () => seenWhenCaughtUp !== undefined)
        assert.deepStrictEqual(
          seenWhenCaughtUp,
          Array.from({ length: 58 }, (_, i) => i + 2),
        )
        yield* publish(60)
        yield* waitUntil("an event after the replay", () => seen.includes(60))
      }),
  )

  it.live("a broadcast subscription on a topic with nothing to replay says at once that it caught up", () =>
    Effect.gen(function* () {
      const { bus, topic } = yield* setup
      let caughtUp = false
      yield* bus.subscribe({
        topic,
        group: "g7",
        broadcast: {
          since: "1 hour",
          onCaughtUp: Effect.sync(() => {
            caughtUp = true
          }),
        },
        handler: () => Effect.void,
      })
      yield* waitUntil("caught up", () => caughtUp)
    }),
  )
})
