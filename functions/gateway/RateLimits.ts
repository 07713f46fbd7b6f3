import { Context, Effect, Layer, Option, type Redacted, Schema } from "effect"
import { RateLimit, RateLimitExceeded, type SyncedLimiter } from "../../shared/RateLimit.ts"
import { RedisConnection } from "../../shared/Redis.ts"

/** Who a limit counts: the client address or the signed-in user. */
export type Subject = "ip" | "user"

/**
 * How a limit counts: in this instance's memory, synchronised with Redis every sync interval (cheap, may admit a
 * bounded excess: `RateLimit.synced`), or in Redis on every request (exact).
 */
export type Counting = "synced" | "exact"

/** The state of one window after a request counted: what the RateLimit-* headers say. */
export interface Quota {
  readonly limit: number
  readonly remaining: number
  /** Seconds until the window resets. */
  readonly resetSeconds: number
}

/** Over the limit: `retryAfter` seconds until a request is accepted again. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  limit: Schema.Int,
  retryAfter: Schema.Int,
}) {}

/** Where the counters live and how their keys are named. */
export interface RateLimitsOptions {
  /** Redis (shared by every gateway instance); None = this process's memory. */
  readonly redisUrl: Option.Option<Redacted.Redacted<string>>
  /** Namespace of the keys in Redis. */
  readonly prefix: string
  /** How often synced limits meet in Redis (0: every request counted there): `RATE_LIMIT_SYNC_MS`. */
  readonly syncMs: number
}

/**
 * Fixed one-minute windows per client address and per user, counted by the kernel's `RateLimit` (Redis shared by
 * every gateway instance; while Redis cannot answer, each instance counts in its own memory, so the effective limit is
 * the limit times the number of instances: a Redis outage never closes the gateway). `bucket` names the counter: the
 * shared default, or a route with its own limit. A synced and an exact limit of one bucket count the same Redis key.
 */
export class RateLimits extends Context.Service<
  RateLimits,
  {
    /**
     * Counts one request of `key` against `perMinute` in the bucket and returns the wait for its answer (RateLimited
     * when over). Synced, the answer is known at once; exact, the count goes to Redis at once and counts started in
     * the same event-loop turn go in one write (the gateway starts the address's count, checks the token, then starts
     * the user's).
     */
    start(
      subject: Subject,
      bucket: string,
      key: string,
      perMinute: number,
      counting: Counting,
    ): Effect.Effect<Effect.Effect<Quota, RateLimited>>
    /** Whether synced limits are decided at once (`countNow` answers them): with Redis and a sync interval. */
    readonly countsNow: boolean
    /**
     * The same count when its answer is known at once (a synced limit), without an effect: the quota, or
     * RateLimited when over; undefined, and nothing counted, for an exact limit (then `start`).
     */
    countNow(
      subject: Subject,
      bucket: string,
      key: string,
      perMinute: number,
      counting: Counting,
    ): Quota | RateLimited | undefined
  }
>()("gateway/RateLimits") {
  /**
   * Counters in Redis when configured (over the process's shared `RedisConnection`, checked at start), otherwise in
   * memory.
   */
  static readonly layer = (options: RateLimitsOptions) =>
    Layer.effect(
      RateLimits,
      Effect.map(RateLimit, (limits) =>
        make(options.prefix, limits, Option.isSome(options.redisUrl) && options.syncMs > 0),
      ),
    ).pipe(
      Layer.provide(
        Option.isSome(options.redisUrl)
          ? RateLimit.layerRedisWith({ syncMs: options.syncMs }).pipe(Layer.provide(RedisConnection.fromEnvironment))
          : RateLimit.layerMemory,
      ),
    )
}

const make = (prefix: string, limits: RateLimit["Service"], countsNow: boolean) => {
  const limiters = new Map<string, SyncedLimiter>()
  const limiterOf = (subject: Subject, bucket: string, points: number, counting: Counting) => {
    const name = `${subject}:${bucket}:${points}`
    let limiter = limiters.get(`${counting}:${name}`)
    if (limiter === undefined) {
      const options = { keyPrefix: `${prefix}:${name}`, points, durationSeconds: 60 }
      limiter = counting === "exact" ? limits.limiter(options) : limits.synced(options)
      limiters.set(`${counting}:${name}`, limiter)
    }
    return limiter
  }
  const start = (subject: Subject, bucket: string, key: string, perMinute: number, counting: Counting) =>
    Effect.map(limiterOf(subject, bucket, perMinute, counting).start(key), (counted) =>
      counted.pipe(
        Effect.map(
          (window): Quota => ({
            limit: perMinute,
            remaining: Math.max(0, window.remaining),
            resetSeconds: Math.ceil(window.msBeforeNext / 1000),
          }),
        ),
        Effect.catchTags({
          RateLimitExceeded: (over) =>
            Effect.fail(
              new RateLimited({ limit: perMinute, retryAfter: Math.max(1, Math.ceil(over.msBeforeNext / 1000)) }),
            ),
          // Neither Redis nor the memory limiter answered: let the request through (logged).
          RateLimitUnavailable: (error) =>
            Effect.as(Effect.logWarning("rate limiter unavailable", { error: String(error.cause) }), {
              limit: perMinute,
              remaining: perMinute,
              resetSeconds: 60,
            }),
        }),
      ),
    )
  const countNow = (subject: Subject, bucket: string, key: string, perMinute: number, counting: Counting) => {
    if (counting === "exact") return undefined
    const window = limiterOf(subject, bucket, perMinute, counting).countNow(key)
    if (window === undefined) return undefined
    if (window instanceof RateLimitExceeded) {
      return new RateLimited({ limit: perMinute, retryAfter: Math.max(1, Math.ceil(window.msBeforeNext / 1000)) })
    }
    return {
      limit: perMinute,
      remaining: Math.max(0, window.remaining),
      resetSeconds: Math.ceil(window.msBeforeNext / 1000),
    } satisfies Quota
  }
  return RateLimits.of({ start, countsNow, countNow })
}
