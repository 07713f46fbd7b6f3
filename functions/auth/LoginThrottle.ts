import { createHash } from "node:crypto"
import { Clock, Context, Effect, Layer, Option } from "effect"
import { TooManyRequests } from "../../shared/Problem.ts"
import { type Limiter, RateLimit, type RateLimitUnavailable } from "../../shared/RateLimit.ts"

/** Throttling settings (see Config.ts: LOGIN_FREE_ATTEMPTS, LOGIN_MAX_DELAY_SECONDS, LOGIN_IP_LIMIT_PER_MINUTE). */
export interface LoginThrottleOptions {
  /** Failed attempts per account before delays start. */
  readonly freeAttempts: number
  /** The longest delay (60 s to 15 minutes: shorter caps would let more than 100 failures an hour through). */
  readonly maxDelaySeconds: number
  /** Attempts (login or register) per client address per minute. */
  readonly ipLimitPerMinute: number
}

/** Failures are counted in a one-hour window per account. */
const WINDOW_SECONDS = 3600
/** Hard bounds of the contract: ≤ 100 failures per account per hour, no delay over 15 minutes. */
const MAX_FAILURES_PER_HOUR = 100
const MAX_DELAY_SECONDS = 900

/**
 * The delay after the `failures`-th failure in the window: none for the free attempts, then 1 s doubling up to the
 * cap. With the 15-minute cap at most ~18 attempts fit in an hour, well under the contract's 100; the 100th failure
 * (reachable only with a tiny cap) waits out the cap anyway.
 */
export const delayAfter = (failures: number, options: LoginThrottleOptions): number => {
  const cap = Math.min(options.maxDelaySeconds, MAX_DELAY_SECONDS)
  if (failures >= MAX_FAILURES_PER_HOUR) return cap
  if (failures < options.freeAttempts) return 0
  return Math.min(2 ** (failures - options.freeAttempts), cap)
}

// Accounts are keyed by a hash of the normalised email: no addresses in Redis, unknown emails behave the same.
const accountKey = (email: string) => createHash("sha256").update(email.trim().toLowerCase()).digest("base64url")

/** How long one account's attempt may hold its lease (a password check takes well under a second). */
const LEASE_SECONDS = 10

/** Brute-force protection for sign-in: a per-account growing, capped delay and a per-address rate limit. */
export class LoginThrottle extends Context.Service<
  LoginThrottle,
  {
    /** Counts an attempt from `ip` and refuses it (429) when the address is over its per-minute limit. */
    admitAddress(ip: string | null): Effect.Effect<void, TooManyRequests>
    /**
     * Runs one password check for the account, unless it is waiting out a delay or another check for it is in flight
     * (429 either way: a burst gets one guess at a time, and every failure is counted before the next guess runs).
     * `check` answers whether the password was right; a failure starts or grows the delay, a success clears it.
     */
    guard<A, E, R>(
      email: string,
      check: Effect.Effect<{ readonly ok: boolean; readonly value: A }, E, R>,
    ): Effect.Effect<{ readonly value: A; readonly delaySeconds: number }, E | TooManyRequests, R>
  }
>()("auth/LoginThrottle") {
  /**
   * The throttle over the kernel's `RateLimit`: Redis when `REDIS_URL` is set (shared by all instances; each instance
   * counts in its own memory while Redis cannot answer), memory otherwise.
   */
  static readonly layer = (options: LoginThrottleOptions) =>
    Layer.effect(
      LoginThrottle,
      Effect.gen(function* () {
        const limits = yield* RateLimit
        // The keys the throttle has always used (`auth-login:<kind>:<key>`): counts and leases carry over a deploy.
        const limiter = (kind: string, points: number, durationSeconds: number) =>
          limits.limiter({ keyPrefix: `auth-login:${kind}`, points, durationSeconds })
        // Keyed per address and clock minute: the window ends with the minute, whenever its first attempt came.
        const perAddress = limiter("ip", options.ipLimitPerMinute, 60)
        const failures = limiter("fail", MAX_FAILURES_PER_HOUR, WINDOW_SECONDS)
        // A delay is a block of the account's key for its length; only its remaining time is read.
        const waits = limiter("wait", 0, MAX_DELAY_SECONDS)
        // One password check in flight per account: the first point takes the lease, deleting the key frees it.
        const leases = limiter("lease", 1, LEASE_SECONDS)
        // The throttle protects, it must not take sign-in down with it: failures to count are logged and let through.
        const failOpen =
          <A>(fallback: A) =>
          (error: RateLimitUnavailable) =>
            Effect.as(Effect.logWarning("login throttle unavailable", { error: error.message }), fallback)
        // Counts one point of `key`: true when that goes over the limit (not when the count failed: fail open).
        const over = (limiter: Limiter, key: string) =>
          limiter.consume(key).pipe(
            Effect.as(false),
            Effect.catchTags({
              RateLimitExceeded: () => Effect.succeed(true),
              RateLimitUnavailable: failOpen(false),
            }),
          )
        const tooMany = (detail: string, retryAfter: number, limit?: number) =>
          new TooManyRequests({
            detail,
            retryAfter: Math.max(1, Math.ceil(retryAfter)),
            ...(limit === undefined ? {} : { limit }),
          })

        const admitAddress = Effect.fn("LoginThrottle.admitAddress")(function* (ip: string | null) {
          if (ip === null || ip === "") return
          const now = yield* Clock.currentTimeMillis
          const minute = Math.floor(now / 60_000)
          if (yield* over(perAddress, `${ip}:${minute}`)) {
            return yield* tooMany(
              "too many sign-in attempts from this address; retry later",
              ((minute + 1) * 60_000 - now) / 1000,
              options.ipLimitPerMinute,
            )
          }
        })

        const guard = <A, E, R>(
          email: string,
          check: Effect.Effect<{ readonly ok: boolean; readonly value: A }, E, R>,
        ) =>
          Effect.gen(function* () {
            const key = accountKey(email)
            const wait = yield* waits.get(key).pipe(Effect.catchTag("RateLimitUnavailable", failOpen(Option.none())))
            const waitMs = Option.isSome(wait) ? wait.value.msBeforeNext : 0
            if (waitMs > 0)
              return yield* tooMany("too many failed sign-ins for this account; retry later", waitMs / 1000)
            if (yield* over(leases, key))
              return yield* tooMany("a sign-in for this account is already in progress; retry", 1)
            return yield* Effect.gen(function* () {
              const result = yield* check
              if (result.ok) {
                yield* failures.delete(key)
                return { value: result.value, delaySeconds: 0 }
              }
              const failed = yield* failures.penalty(key).pipe(
                Effect.map((window) => window.consumed),
                Effect.catchTag("RateLimitUnavailable", failOpen(0)),
              )
              const delay = delayAfter(failed, options)
              if (delay > 0) {
                yield* waits.block(key, delay).pipe(Effect.catchTag("RateLimitUnavailable", failOpen(undefined)))
              }
              return { value: result.value, delaySeconds: delay }
            }).pipe(Effect.ensuring(leases.delete(key)))
          }).pipe(Effect.withSpan("LoginThrottle.guard"))

        return LoginThrottle.of({ admitAddress, guard })
      }),
    ).pipe(Layer.provide(RateLimit.layer))
}
