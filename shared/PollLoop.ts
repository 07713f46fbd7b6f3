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
  /**
   * Ends an idle wait early when signalled (e.g. a Postgres notification that work was added). Only a hint: the loop
   * still polls every `pollInterval`, so work whose signal was lost (sent while nobody listened) is found anyway.
   */
  readonly wakeUp?: WakeUp
}

/**
 * A hint that work may be waiting, signalled from anywhere (a driver's event handler). A signal that comes while
 * a round runs is kept (the round may have looked before the work was there), so the next idle wait ends at once.
 */
export interface WakeUp {
  readonly signal: () => void
  /** Forgets the signals so far: called as a round starts, which sees everything signalled before it. */
  readonly clear: () => void
  /** Ends at the next signal, or at once if one came since the last `clear`. */
  readonly wait: Effect.Effect<void>
}

export const makeWakeUp = (): WakeUp => {
  let signalled = false
  let waiter: (() => void) | undefined
  return {
    signal: () => {
      signalled = true
      const resume = waiter
      waiter = undefined
      resume?.()
    },
    clear: () => {
      signalled = false
    },
    wait: Effect.callback<void>((resume) => {
      if (signalled) return resume(Effect.void)
      waiter = () => resume(Effect.void)
      return Effect.sync(() => {
        waiter = undefined
      })
    }),
  }
}

/**
 * Runs `round` (the number of items it handled) forever: again at once after a full round, after `pollInterval`
 * (or a `wakeUp` signal) when idle, with doubling backoff while it fails (from 200 ms again after a round succeeds).
 * Only interruption ends it: fork it in the worker's scope.
 */
export const pollLoop = <E, R>(round: Effect.Effect<number, E, R>, options: PollLoopOptions) => {
  const pollInterval = Duration.fromInputUnsafe(options.pollInterval)
  const wakeUp = options.wakeUp
  const idle =
    wakeUp === undefined ? Effect.sleep(pollInterval) : Effect.raceFirst(Effect.sleep(pollInterval), wakeUp.wait)
  const backoff = Backoff.exponential({ base: "200 millis", max: options.maxBackoff }).pipe(
    Schedule.setInputType<Cause.Cause<E>>(),
    Schedule.tap(({ input, attempt, duration }) =>
      Effect.logWarning(`${options.what} failed, retrying`, input, {
        retry: attempt,
        delay: Duration.toMillis(duration),
      }),
    ),
  )
  const once =
    wakeUp === undefined
      ? round
      : Effect.andThen(
          Effect.sync(() => wakeUp.clear()),
          round,
        )
  return once.pipe(
    Backoff.retryForever(backoff),
    Effect.flatMap((count) => (count < options.batchSize ? idle : Effect.void)),
    // No yield of its own between rounds (the runtime's op budget still yields), as a zero-delay repeat was not.
    Effect.forever({ disableYield: true }),
  )
}
