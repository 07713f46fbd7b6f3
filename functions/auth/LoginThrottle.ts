import { createHash } from "node:crypto"
import { Clock, Context, Effect, Layer, Option } from "effect"
import { Cache, type CacheError } from "../../shared/Cache.ts"
import { TooManyRequests } from "../../shared/Problem.ts"

/** Throttling settings (see Config.ts: LOGIN_FREE_ATTEMPTS, LOGIN_MAX_DELAY_SECONDS, LOGIN_IP_LIMIT_PER_MINUTE). */
export interface LoginThrottleOptions {
  /** Failed attempts per account before delays start. */
  readonly freeAttempts: number
  /** The longest delay; never more than 15 minutes, so the real owner is never locked out for longer. */
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

/** Brute-force protection for sign-in: a per-account growing, capped delay and a per-address rate limit. */
export class LoginThrottle extends Context.Service<
  LoginThrottle,
  {
    /** Counts an attempt from `ip` and refuses it (429) when the address is over its limit or the account is waiting. */
    admit(input: { readonly email?: string; readonly ip: string | null }): Effect.Effect<void, TooManyRequests>
    /** Records a failed login for the account; returns the delay (seconds) it now has to wait. */
    failed(email: string): Effect.Effect<number>
    /** Clears the account's failures after a successful login. */
    succeeded(email: string): Effect.Effect<void>
  }
>()("auth/LoginThrottle") {
  /** The throttle over the cache (Redis when configured: shared by all instances; memory otherwise). */
  static readonly layer = (options: LoginThrottleOptions) =>
    Layer.effect(
      LoginThrottle,
      Effect.gen(function* () {
        const cache = yield* Cache
        // The throttle protects, it must not take sign-in down with it: cache failures are logged and let through.
        const failOpen =
          <A>(fallback: A) =>
          (error: CacheError) =>
            Effect.as(Effect.logWarning("login throttle unavailable", { error: error.message }), fallback)

        const admit = Effect.fn("LoginThrottle.admit")(function* (input: {
          readonly email?: string
          readonly ip: string | null
        }) {
          const now = yield* Clock.currentTimeMillis
          if (input.ip !== null && input.ip !== "") {
            const minute = Math.floor(now / 60_000)
            const attempts = yield* cache.increment(`ip:${input.ip}:${minute}`, 60).pipe(Effect.catch(failOpen(0)))
            if (attempts > options.ipLimitPerMinute) {
              return yield* new TooManyRequests({
                detail: "too many sign-in attempts from this address; retry later",
                retryAfter: Math.max(1, Math.ceil(((minute + 1) * 60_000 - now) / 1000)),
              })
            }
          }
          if (input.email === undefined) return
          const until = yield* cache
            .get(`wait:${accountKey(input.email)}`)
            .pipe(Effect.catch(failOpen(Option.none<string>())))
          const waitMs = Option.isSome(until) ? Number(until.value) - now : 0
          if (waitMs > 0) {
            return yield* new TooManyRequests({
              detail: "too many failed sign-ins for this account; retry later",
              retryAfter: Math.ceil(waitMs / 1000),
            })
          }
        })

        const failed = Effect.fn("LoginThrottle.failed")(function* (email: string) {
          const key = accountKey(email)
          const failures = yield* cache.increment(`fail:${key}`, WINDOW_SECONDS).pipe(Effect.catch(failOpen(0)))
          const delay = delayAfter(failures, options)
          if (delay > 0) {
            const until = (yield* Clock.currentTimeMillis) + delay * 1000
            yield* cache
              .set(`wait:${key}`, String(until), { ttlSeconds: delay })
              .pipe(Effect.catch(failOpen(undefined)))
          }
          return delay
        })

        const succeeded = Effect.fn("LoginThrottle.succeeded")(function* (email: string) {
          yield* cache.delete(`fail:${accountKey(email)}`).pipe(Effect.catch(failOpen(undefined)))
        })

        return LoginThrottle.of({ admit, failed, succeeded })
      }),
    )
}
