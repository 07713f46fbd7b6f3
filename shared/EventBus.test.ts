import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, Logger } from "effect"
import { TestClock } from "effect/testing"
import * as CloudEvent from "./CloudEvent.ts"
import { Db, DbError } from "./Db.ts"
import {
  consume,
  consumeBatch,
  EVENTS_PER_TRANSACTION,
  type Outcome,
  type RetryPolicy,
  type Settled,
} from "./EventBus.ts"
import { serviceDb } from "./testing/busHarness.ts"

// A database whose transaction `n` (0-based) fails as unreachable when `down(n)`; the inbox always takes the event.
const flakyDb = (down: (n: number) => boolean, began: Array<number>) =>
  ({
    schema: "t_bus",
    query: () => Effect.succeed([{ inserted: 1 }]),
    transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        began.push(yield* Clock.currentTimeMillis)
        if (down(began.length - 1)) {
          return yield* new DbError({ message: "connection terminated", code: "08006", cause: null })
        }
        return yield* effect
      }),
  }) as unknown as Db["Service"]

// The message parts of every log line, by their first part.
const logCapture = () => {
  const lines: Array<ReadonlyArray<unknown>> = []
  const logger = Logger.make(({ message }) => void lines.push(message as ReadonlyArray<unknown>))
  const named = (text: string) => lines.filter((line) => line[0] === text).map((line) => line[1])
  return { named, layer: Logger.layer([logger]) }
}

// Consumes one event with `handler` (failing while `fails(call)`), on the test clock; the outcome and the times
// (ms) at which the handler was called.
const consumeOnce = (retry: RetryPolicy, fails: (call: number) => boolean, db: Db["Service"]) =>
  Effect.gen(function* () {
    const calls: Array<number> = []
    const handler = () =>
      Effect.gen(function* () {
        calls.push(yield* Clock.currentTimeMillis)
        if (fails(calls.length)) return yield* Effect.fail(new Error(`handler failure ${calls.length}`))
      })
    const event = CloudEvent.make({ source: "t_prod", type: "test.item.created", data: { n: 1 } })
    const fiber = yield* Effect.forkChild(
      consume({
        consumer: "g",
        topic: "t_prod.events",
        payload: JSON.stringify(event),
        handler,
        retry,
        system: "postgresql",
      }).pipe(Effect.provideService(Db, db)),
    )
    yield* TestClock.adjust("1 minute")
    const outcome: Outcome = yield* Fiber.join(fiber)
    return { outcome, calls }
  })

describe("consume", () => {
  it.effect("retries a failing handler with doubling, capped waits and dead-letters it after maxAttempts", () => {
    const logs = logCapture()
    return Effect.gen(function* () {
      const retry = { maxAttempts: 4, baseDelay: "100 millis", maxDelay: "250 millis" } as const
      const { outcome, calls } = yield* consumeOnce(
        retry,
        () => true,
        flakyDb(() => false, []),
      )
      assert.deepStrictEqual(calls, [0, 100, 300, 550])
      assert.strictEqual(outcome._tag, "Failed")
      assert.strictEqual(outcome._tag === "Failed" && outcome.attempts, 4)
      assert.deepStrictEqual(
        logs.named("handler failed, retrying").map((fields) => (fields as { attempt: number }).attempt),
        [1, 2, 3],
      )
      assert.deepStrictEqual(logs.named("handler failed, dead-lettering"), [{ attempts: 4 }])
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("counts the handler's attempts, not the outages, and an outage's backoff goes on across them", () => {
    const logs = logCapture()
    return Effect.gen(function* () {
      const retry = { maxAttempts: 2, baseDelay: "100 millis", maxDelay: "1 second" } as const
      const began: Array<number> = []
      // Transactions 0, 1 and 3 meet the database away; the handler fails on its first call only.
      const db = flakyDb((n) => n === 0 || n === 1 || n === 3, began)
      const { outcome, calls } = yield* consumeOnce(retry, (call) => call === 1, db)
      // Outage waits 100, 200; the handler's fault 100; the third outage 400 (not 100 again).
      assert.deepStrictEqual(began, [0, 100, 300, 400, 800])
      assert.deepStrictEqual(calls, [300, 800])
      assert.deepStrictEqual(outcome, { _tag: "Handled", attempts: 2 })
      assert.deepStrictEqual(logs.named("inbox transaction failed, retrying"), [
        { retry: 1 },
        { retry: 2 },
        { retry: 3 },
      ])
      assert.deepStrictEqual(
        logs.named("handler failed, retrying").map((fields) => (fields as { attempt: number }).attempt),
        [1],
      )
    }).pipe(Effect.provide(logs.layer))
  })
})

describe("consumeBatch (real Postgres)", () => {
  const fastRetry = { maxAttempts: 3, baseDelay: "10 millis", maxDelay: "40 millis" } as const
  const events = (count: number) =>
    Array.from({ length: count }, (_, n) =>
      CloudEvent.make({ source: "t_prod", type: "test.item.created", data: { n } }),
    )
  const numberOf = (event: CloudEvent.CloudEvent) => (event.data as { n: number }).n
  // A consumer's schema with a table its handlers write their effects to.
  const withEffects = Effect.gen(function* () {
    const db = yield* serviceDb("t_batch")
    yield* db.query(`CREATE TABLE ${db.schema}.effects (n integer NOT NULL)`)
    const effects = Effect.map(db.query<{ n: number }>(`SELECT n FROM ${db.schema}.effects ORDER BY n`), (rows) =>
      rows.map((row) => row.n),
    )
    const inboxRows = Effect.map(
      db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.inbox`),
      ([row]) => row?.n,
    )
    return { db, effects, inboxRows }
  })

  it.live("a failing handler mid-batch is retried and dead-lettered alone; the others commit once, in order", () =>
    Effect.gen(function* () {
      const { db, effects, inboxRows } = yield* withEffects
      const batch = events(6)
      const calls: Array<number> = []
      // What another session sees of the effects each time event 2's handler runs.
      const seenByOthers: Array<number> = []
      const handler = (event: CloudEvent.CloudEvent) =>
        Effect.gen(function* () {
          const n = numberOf(event)
          calls.push(n)
          yield* db.query(`INSERT INTO ${db.schema}.effects (n) VALUES ($1)`, [n])
          if (n !== 2) return
          const { rows } = yield* Effect.promise(() =>
            db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.effects`),
          )
          seenByOthers.push(rows[0]?.n ?? -1)
          return yield* Effect.fail(new Error("poison"))
        })
      const settled: Array<Settled> = []
      yield* consumeBatch({
        consumer: "g",
        topic: "t_prod.events",
        handler,
        retry: fastRetry,
        system: "postgresql",
        // Six events, an undecodable message and a second copy of event 4.
        messages: [
          ...batch.map((e) => ({ payload: JSON.stringify(e) })),
          { payload: "{ not json" },
          {
            payload: JSON.stringify(batch[4]),
          },
        ],
        settled: (some) => Effect.sync(() => void settled.push(...some)),
      }).pipe(Effect.provideService(Db, db))

      assert.deepStrictEqual(calls, [0, 1, 2, 2, 2, 3, 4, 5])
      // Its first attempt ran in the batch's transaction (nothing committed yet); its retries after events 0 and 1
      // had committed, alone.
      assert.deepStrictEqual(seenByOthers, [0, 2, 2])
      assert.deepStrictEqual(yield* effects, [0, 1, 3, 4, 5])
      assert.strictEqual(yield* inboxRows, 5)
      assert.deepStrictEqual(
        settled.map(({ index, outcome }) => `${index}:${outcome._tag}`),
        ["0:Handled", "1:Handled", "2:Failed", "3:Handled", "4:Handled", "5:Handled", "6:Undecodable", "7:Duplicate"],
      )
      assert.deepStrictEqual(settled[2]?.outcome, { _tag: "Failed", attempts: 3, error: "Error: poison" })
    }).pipe(Effect.scoped),
  )

  it.live("a crash mid-batch loses only its open transaction; the batch delivered again has no double effects", () =>
    Effect.gen(function* () {
      const { db, effects, inboxRows } = yield* withEffects
      const count = EVENTS_PER_TRANSACTION + 36
      const crashAt = EVENTS_PER_TRANSACTION + 16
      const messages = events(count).map((e) => ({ payload: JSON.stringify(e) }))
      const calls: Array<number> = []
      const reached = yield* Deferred.make<void>()
      let crashing = true
      const handler = (event: CloudEvent.CloudEvent) =>
        Effect.gen(function* () {
          const n = numberOf(event)
          calls.push(n)
          yield* db.query(`INSERT INTO ${db.schema}.effects (n) VALUES ($1)`, [n])
          if (crashing && n === crashAt) {
            yield* Deferred.succeed(reached, undefined)
            return yield* Effect.never
          }
        })
      const delivery = consumeBatch({
        consumer: "g",
        topic: "t_prod.events",
        handler,
        retry: fastRetry,
        system: "postgresql",
        messages,
      }).pipe(Effect.provideService(Db, db))

      // The consumer stops dead in the second transaction, as a crash would stop it.
      const fiber = yield* Effect.forkChild(delivery)
      yield* Deferred.await(reached)
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(yield* inboxRows, EVENTS_PER_TRANSACTION)
      assert.deepStrictEqual(
        yield* effects,
        Array.from({ length: EVENTS_PER_TRANSACTION }, (_, n) => n),
      )

      // Its offset was never stored: the whole batch comes again.
      crashing = false
      calls.length = 0
      yield* delivery
      assert.deepStrictEqual(
        calls,
        Array.from({ length: count - EVENTS_PER_TRANSACTION }, (_, i) => EVENTS_PER_TRANSACTION + i),
      )
      assert.deepStrictEqual(
        yield* effects,
        Array.from({ length: count }, (_, n) => n),
      )
      assert.strictEqual(yield* inboxRows, count)
    }).pipe(Effect.scoped),
  )
})
