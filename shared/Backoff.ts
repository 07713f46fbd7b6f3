import { Cause, Duration, Effect, Schedule } from "effect"

/** Exponential backoff: the first wait `base`, each next one twice as long, none longer than `max`. */
export interface ExponentialOptions {
  readonly base: Duration.Input
  /** Longest wait; default: no limit. */
  readonly max?: Duration.Input | undefined
  /** Spreads each wait over 80..120 % of itself, so that callers failing together do not retry together. */
  readonly jitter?: boolean | undefined
}

/**
 * The waits of `options` as a schedule for `Effect.retry` / `Effect.repeat`. It never ends by itself (bound it with
 * `Schedule.upTo`); each retry or repeat starts it afresh, so the waits start again from `base` after a success.
 */
export const exponential = (options: ExponentialOptions): Schedule.Schedule<Duration.Duration> => {
  const doubling = Schedule.exponential(options.base, 2)
  const spread = options.jitter ? Schedule.jittered(doubling) : doubling
  if (options.max === undefined) return spread
  const max = Duration.fromInputUnsafe(options.max)
  return Schedule.modifyDelay(spread, ({ duration }) => Effect.succeed(Duration.min(duration, max)))
}

/**
 * The wait `exponential(options)` (without jitter) takes before retry `attempt` (1-based), for a retry whose count
 * is stored (a row's attempts, read again by a later round or another instance) rather than held by a running schedule.
 */
export const delayAt = (options: ExponentialOptions, attempt: number): Duration.Duration => {
  const wait = Duration.times(Duration.fromInputUnsafe(options.base), 2 ** Math.max(0, attempt - 1))
  return options.max === undefined ? wait : Duration.min(wait, Duration.fromInputUnsafe(options.max))
}

/**
 * Runs an effect until it succeeds, waiting `schedule`'s delays in between. Every failure is retried, a defect too
 * (`Effect.retry` alone lets defects through): the schedule gets each one's `Cause`, to log it. Interruption is not
 * retried. For background work that must outlive any failure; the schedule must not end (if it did, its last cause
 * would become a defect).
 */
export const retryForever =
  <X, E, RS>(schedule: Schedule.Schedule<X, Cause.Cause<E>, never, RS>) =>
  <A, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, never, R | RS> =>
    self.pipe(
      Effect.catchCause((cause) => (Cause.hasInterruptsOnly(cause) ? Effect.interrupt : Effect.fail(cause))),
      Effect.retry(schedule),
      Effect.orDie,
    )
