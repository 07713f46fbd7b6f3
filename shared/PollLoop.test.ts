import { assert, describe, it } from "@effect/vitest"
import { Cause, Clock, type Duration, Effect, Fiber, Logger } from "effect"
import { TestClock } from "effect/testing"
import { makeWakeUp, pollLoop } from "./PollLoop.ts"

// What the loop logs: each line's message parts and whether it carried a cause.
const logCapture = () => {
  const lines: Array<{ readonly message: unknown; readonly failed: boolean }> = []
  const logger = Logger.make(({ message, cause }) => {
    lines.push({ message, failed: Cause.hasFails(cause) || Cause.hasDies(cause) })
  })
  return { lines, layer: Logger.layer([logger]) }
}

// Runs `script` as the loop's rounds, one entry per round ("fail", "die" or the items handled), then idle rounds (0);
// returns the test clock's time at the start of every round after `runFor` of it has passed.
const run = (script: ReadonlyArray<"fail" | "die" | number>, runFor: Duration.Input) =>
  Effect.gen(function* () {
    const started: Array<number> = []
    let next = 0
    const round = Effect.gen(function* () {
      started.push(yield* Clock.currentTimeMillis)
      const step = script[next++] ?? 0
      if (step === "fail") return yield* Effect.fail("down")
      if (step === "die") return yield* Effect.die("bug")
      return step
    })
    const fiber = yield* Effect.forkChild(
      pollLoop(round, { what: "test poll", batchSize: 10, pollInterval: "500 millis", maxBackoff: "1 second" }),
    )
    yield* TestClock.adjust(runFor)
    yield* Fiber.interrupt(fiber)
    return started
  })

describe("pollLoop", () => {
  it.effect("backs off doubling from 200 ms while rounds fail, holds the cap, and starts again after a success", () => {
    const logs = logCapture()
    return Effect.gen(function* () {
      // Five failures (a defect among them), a full round, two failures, then idle.
      const started = yield* run(["fail", "fail", "die", "fail", "fail", 10, "fail", "fail", 3], "4500 millis")
      assert.deepStrictEqual(started, [0, 200, 600, 1400, 2400, 3400, 3400, 3600, 4000, 4500])
      const warnings = logs.lines.filter(
        (line) => Array.isArray(line.message) && line.message[0] === "test poll failed, retrying",
      )
      assert.deepStrictEqual(
        warnings.map((line) => (line.message as Array<unknown>)[1]),
        [
          { retry: 1, delay: 200 },
          { retry: 2, delay: 400 },
          { retry: 3, delay: 800 },
          { retry: 4, delay: 1000 },
          { retry: 5, delay: 1000 },
          { retry: 1, delay: 200 },
          { retry: 2, delay: 400 },
        ],
      )
      assert.isTrue(warnings.every((line) => line.failed))
    }).pipe(Effect.provide(logs.layer))
  })

  it.effect("ends an idle wait at a wake-up signal, keeps a signal sent during a round, and still polls without", () =>
    Effect.gen(function* () {
      const wakeUp = makeWakeUp()
      const started: Array<number> = []
      const round = Effect.gen(function* () {
        const at = yield* Clock.currentTimeMillis
        started.push(at)
        // The round at 300 ms is signalled while it runs (after it looked): the next one comes at once.
        if (at === 300 && started.filter((t) => t === 300).length === 1) wakeUp.signal()
        return 0
      })
      const fiber = yield* Effect.forkChild(
        pollLoop(round, { what: "test poll", batchSize: 10, pollInterval: "1 second", maxBackoff: "1 second", wakeUp }),
      )
      yield* TestClock.adjust("300 millis")
      wakeUp.signal()
      yield* TestClock.adjust("2000 millis")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(started, [0, 300, 300, 1300, 2300])
    }),
  )

  it.effect("runs the next round at once after a full one and waits the poll interval after a short one", () =>
    Effect.gen(function* () {
      const started = yield* run([10, 10, 4, 10, 0], "1500 millis")
      assert.deepStrictEqual(started, [0, 0, 0, 500, 500, 1000, 1500])
    }),
  )
})
