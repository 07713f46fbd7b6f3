import { Cause, Duration, Effect } from "effect"

/** The wait before retry `attempt` (1-based): `baseMs` doubling with each attempt, at most `maxMs`. */
export const doublingMs = (baseMs: number, attempt: number, maxMs: number): number =>
  Math.min(baseMs * 2 ** Math.max(0, attempt - 1), maxMs)

/** How a background worker polls: rounds of work, a pause when idle, backoff while failing. */
export interface PollLoopOptions {
  /** Named in the warning logged when a round fails. */
  readonly what: string
  /** A full round (this many items) runs the next one at once; fewer means idle: wait `pollInterval`. */
  readonly batchSize: number
  readonly pollInterval: Duration.Input
  /** Longest wait between retries while rounds fail (doubling from 200 ms). */
  readonly maxBackoff: Duration.Input
}

/**
 * Runs `round` (the number of items it handled) forever: again at once after a full round, after `pollInterval`
 * when idle, with doubling backoff while it fails. Only interruption ends it: fork it in the worker's scope.
 */
export const pollLoop = <E, R>(round: Effect.Effect<number, E, R>, options: PollLoopOptions) =>
  Effect.gen(function* () {
    const maxBackoffMs = Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff))
    const pollInterval = Duration.fromInputUnsafe(options.pollInterval)
    let failures = 0
    while (true) {
      const exit = yield* Effect.exit(round)
      if (exit._tag === "Success") {
        failures = 0
        if (exit.value < options.batchSize) yield* Effect.sleep(pollInterval)
      } else {
        if (Cause.hasInterruptsOnly(exit.cause)) return yield* Effect.interrupt
        failures++
        const delay = doublingMs(200, failures, maxBackoffMs)
        yield* Effect.logWarning(`${options.what} failed, retrying`, exit.cause, { retry: failures, delay })
        yield* Effect.sleep(Duration.millis(delay))
      }
    }
  })
