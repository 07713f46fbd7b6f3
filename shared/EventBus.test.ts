import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Logger } from "effect"
import { TestClock } from "effect/testing"
import * as CloudEvent from "./CloudEvent.ts"
import { Db, DbError } from "./Db.ts"
import { consume, type Outcome, type RetryPolicy } from "./EventBus.ts"

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
