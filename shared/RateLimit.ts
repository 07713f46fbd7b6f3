import { Config, Context, Effect, Layer, Option, Schema } from "effect"
import type { Redis } from "ioredis"
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible"
import { availabilityOf, isReply, RedisConnection } from "./Redis.ts"

/** A key's window after an operation. */
export interface Window {
  /** Points counted in the window, this operation's included. */
  readonly consumed: number
  /** Points left before the limit (0 once over it). */
  readonly remaining: number
  /** Milliseconds until the window (or a block) ends. */
  readonly msBeforeNext: number
}

/** Over the limit: `msBeforeNext` until the key's window ends and a consume is accepted again. */
export class RateLimitExceeded extends Schema.TaggedError<RateLimitExceeded>()("RateLimitExceeded", {
  msBeforeNext: Schema.Number,
}) {}

/** Neither Redis nor this process's memory could count; each caller decides what that means (all let through). */
export class RateLimitUnavailable extends Schema.TaggedError<RateLimitUnavailable>()("RateLimitUnavailable", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** One limit: `points` per fixed window of `durationSeconds` starting at a key's first point, per key. */
export interface LimiterOptions {
  /** Names the counters: a key is stored as `<keyPrefix>:<key>` (after the connection's `REDIS_KEY_PREFIX`). */
  readonly keyPrefix: string
  readonly points: number
  readonly durationSeconds: number
}

/** The operations of one limit (`rate-limiter-flexible`'s, as effects). */
export interface Limiter {
  /**
   * Counts one point of `key`: sends the count at once and returns the wait for its answer, so that counts started in
   * the same event-loop turn go to Redis in one write.
   */
  start(key: string): Effect.Effect<Effect.Effect<Window, RateLimitExceeded | RateLimitUnavailable>>
  /** Counts one point of `key`; RateLimitExceeded when that goes over the limit. */
  consume(key: string): Effect.Effect<Window, RateLimitExceeded | RateLimitUnavailable>
  /** Counts one point of `key` without refusing (the window says how many there are). */
  penalty(key: string): Effect.Effect<Window, RateLimitUnavailable>
  /** The key's window, if it has one. */
  get(key: string): Effect.Effect<Option.Option<Window>, RateLimitUnavailable>
  /** Puts the key over its limit for `seconds` (whole seconds: Redis expires a block by the second). */
  block(key: string, seconds: number): Effect.Effect<void, RateLimitUnavailable>
  /** Forgets the key in memory and in Redis (a Redis that cannot answer is skipped: its window runs out on its own). */
  delete(key: string): Effect.Effect<void>
}

/**
 * Where rate limits count, over `rate-limiter-flexible` (a well-kept library: atomic Redis scripts, memory limiters
 * with the same semantics). With Redis, every instance of a service shares the counts; while Redis cannot answer, each
 * instance counts in its own memory (so the effective limit is the limit times the number of instances) and asks Redis
 * again once it answers (`RedisAvailability`): a Redis outage never refuses a request for want of a counter, and a hung
 * Redis costs one command timeout, not one per request. Without Redis, memory only.
 */
export class RateLimit extends Context.Service<
  RateLimit,
  {
    /** The limiter of one limit (made once per limit and kept: each is a few objects, no connection of its own). */
    limiter(options: LimiterOptions): Limiter
  }
>()("shared/RateLimit") {
  /** Counts in this process's memory only. */
  static readonly layerMemory: Layer.Layer<RateLimit> = Layer.sync(RateLimit, () => make(undefined))

  /** Counts in Redis over the process's `RedisConnection`, in memory while it cannot answer. */
  static readonly layerRedis: Layer.Layer<RateLimit, never, RedisConnection> = Layer.effect(
    RateLimit,
    Effect.map(RedisConnection, (redis: Redis) => make(redis)),
  )

  /** Redis when `REDIS_URL` is set (over the shared `RedisConnection.fromEnvironment`), otherwise memory. */
  static readonly layer = Layer.unwrap(
    Effect.map(Config.option(Config.Redacted("REDIS_URL")), (url) =>
      Option.isSome(url)
        ? RateLimit.layerRedis.pipe(Layer.provide(RedisConnection.fromEnvironment))
        : RateLimit.layerMemory,
    ),
  )
}

const make = (redis: Redis | undefined) => {
  const availability = redis === undefined ? undefined : availabilityOf(redis)
  const limiter = (options: LimiterOptions): Limiter => {
    const settings = { keyPrefix: options.keyPrefix, points: options.points, duration: options.durationSeconds }
    const local = new RateLimiterMemory(settings)
    const shared = redis === undefined ? undefined : new RateLimiterRedis({ ...settings, storeClient: redis })
    // Redis while it answers; its failure (anything but a refusal) is told to the availability and the operation runs
    // in this process's memory instead. Not the library's `insuranceLimiter`: that one swallows the error, so nothing
    // would mark Redis down and a hung Redis would cost a command timeout on every request.
    const run = <A>(operation: (limiter: RateLimiterAbstract) => Promise<A>): Promise<A> => {
      if (shared === undefined || availability === undefined || !availability.up()) return operation(local)
      return operation(shared).catch((rejection: unknown) => {
        if (rejection instanceof RateLimiterRes) throw rejection
        if (!isReply(rejection)) availability.failed(rejection)
        return operation(local)
      })
    }
    const attempt = <A>(operation: (limiter: RateLimiterAbstract) => Promise<A>) =>
      Effect.tryPromise({ try: () => run(operation), catch: unavailable })
    const start = (key: string) =>
      Effect.sync(() => {
        const pending = run((limiter) => limiter.consume(key))
        // Its answer may be waited for later, or not at all: a refusal meanwhile is not an unhandled rejection.
        pending.catch(() => {})
        return Effect.map(Effect.tryPromise({ try: () => pending, catch: failure }), windowOf)
      })
    return {
      start,
      consume: (key) => Effect.flatten(start(key)),
      penalty: (key) =>
        Effect.map(
          attempt((limiter) => limiter.penalty(key)),
          windowOf,
        ),
      get: (key) =>
        Effect.map(
          attempt((limiter) => limiter.get(key)),
          (res) => Option.map(Option.fromNullishOr(res), windowOf),
        ),
      block: (key, seconds) => Effect.asVoid(attempt((limiter) => limiter.block(key, seconds))),
      // Both stores: what was counted in memory during an outage must not outlive the delete once Redis is back.
      delete: (key) =>
        Effect.promise(async () => {
          await local.delete(key)
          if (shared === undefined || availability === undefined || !availability.up()) return
          await shared.delete(key).catch((error: unknown) => {
            if (!isReply(error)) availability.failed(error)
          })
        }),
    }
  }
  return RateLimit.of({ limiter })
}

const windowOf = (res: RateLimiterRes): Window => ({
  consumed: res.consumedPoints,
  remaining: res.remainingPoints,
  msBeforeNext: res.msBeforeNext,
})

const unavailable = (cause: unknown) =>
  new RateLimitUnavailable({ message: cause instanceof Error ? cause.message : String(cause), cause })

// A refusal (the library rejects with the window) is over the limit; anything else is the stores failing.
const failure = (rejection: unknown) =>
  rejection instanceof RateLimiterRes
    ? new RateLimitExceeded({ msBeforeNext: rejection.msBeforeNext })
    : unavailable(rejection)
