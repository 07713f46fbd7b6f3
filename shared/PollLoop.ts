import { type Cause, Duration, Effect, Schedule } from "effect"
import * as Backoff from "./Backoff.ts"

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
 * when idle, with doubling backoff while it fails (from 200 ms again after a round succeeds). Only interruption ends
 * it: fork it in the worker's scope.
 */
export const pollLoop = <E, R>(round: Effect.Effect<number, E, R>, options: PollLoopOptions) => {
  const pace = Schedule.spaced(options.pollInterval).pipe(
    Schedule.setInputType<number>(),
    Schedule.modifyDelay(({ input, duration }) => Effect.succeed(input < options.batchSize ? duration : Duration.zero)),
  )
  const backoff = Backoff.exponential({ base: "200 millis", max: options.maxBackoff }).pipe(
    Schedule.setInputType<Cause.Cause<E>>(),
    Schedule.tap(({ input, attempt, duration }) =>
      Effect.logWarning(`${options.what} failed, retrying`, input, {
        retry: attempt,
        delay: Duration.toMillis(duration),
      }),
    ),
  )
  return round.pipe(Backoff.retryForever(backoff), Effect.repeat(pace))
}
