import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import * as Backoff from "./Backoff.ts"

// The test clock's times (ms) of the attempts of an effect failing `failures` times, retried on `schedule`.
const attemptTimes = (schedule: Schedule.Schedule<unknown, unknown>, failures: number) =>
  Effect.gen(function* () {
    const times: Array<number> = []
    const attempt = Effect.gen(function* () {
      times.push(yield* Clock.currentTimeMillis)
      if (times.length <= failures) return yield* Effect.fail("down")
    })
    const fiber = yield* Effect.forkChild(Effect.retry(attempt, schedule))
    yield* TestClock.adjust("1 hour")
    yield* Fiber.join(fiber)
    return times
  })

const waits = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

describe("Backoff.exponential", () => {
  it.effect("waits base, doubling, and never longer than max; delayAt names the same waits", () =>
    Effect.gen(function* () {
      const options: Backoff.ExponentialOptions = { base: "100 millis", max: "1 second" }
      const times = yield* attemptTimes(Backoff.exponential(options), 7)
      assert.deepStrictEqual(waits(times), [100, 200, 400, 800, 1000, 1000, 1000])
      assert.deepStrictEqual(
        waits(times),
        [1, 2, 3, 4, 5, 6, 7].map((attempt) => Duration.toMillis(Backoff.delayAt(options, attempt))),
      )
    }),
  )

  it.effect("has no cap without max, and starts from base again in the next retry", () =>
    Effect.gen(function* () {
      const schedule = Backoff.exponential({ base: "100 millis" })
      assert.deepStrictEqual(waits(yield* attemptTimes(schedule, 6)), [100, 200, 400, 800, 1600, 3200])
      assert.deepStrictEqual(waits(yield* attemptTimes(schedule, 2)), [100, 200])
    }),
  )

  it.effect("with jitter, each wait lies within 80..120 % of the doubling one", () =>
    Effect.gen(function* () {
      const times = yield* attemptTimes(Backoff.exponential({ base: "100 millis", jitter: true }), 5)
      waits(times).forEach((wait, i) => {
        const nominal = 100 * 2 ** i
        assert.isTrue(wait >= nominal * 0.8 && wait <= nominal * 1.2, `wait ${i + 1}: ${wait} ms`)
      })
    }),
  )
})

describe("Backoff.retryForever", () => {
  it.effect("retries failures and defects alike, handing the schedule each cause", () =>
    Effect.gen(function* () {
      let calls = 0
      const seen: Array<string> = []
      const flaky = Effect.suspend(() => {
        calls++
        return calls === 1 ? Effect.fail("down") : calls === 2 ? Effect.die("bug") : Effect.succeed(calls)
      })
      const schedule = Schedule.spaced("1 second").pipe(
        Schedule.tap(({ input }) => Effect.sync(() => seen.push(String(input)))),
      )
      const fiber = yield* Effect.forkChild(flaky.pipe(Backoff.retryForever(schedule)))
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), 3)
      assert.strictEqual(seen.length, 2)
      assert.include(seen[0], "down")
      assert.include(seen[1], "bug")
    }),
  )

  it.effect("stops at interruption instead of retrying it", () =>
    Effect.gen(function* () {
      let calls = 0
      const interrupted = Effect.suspend(() => {
        calls++
        return Effect.interrupt
      })
      const exit = yield* Effect.exit(interrupted.pipe(Backoff.retryForever(Schedule.spaced("1 second"))))
      assert.strictEqual(exit._tag, "Failure")
      assert.strictEqual(calls, 1)
    }),
  )
})
