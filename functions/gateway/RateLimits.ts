import { Context, Effect, Layer, Option, type Redacted, Schema } from "effect"
import type { Redis } from "ioredis"
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible"
import { availabilityOf, isReply, RedisConnection } from "../../shared/Redis.ts"

/** Who a limit counts: the client address or the signed-in user. */
export type Subject = "ip" | "user"

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
}

/**
 * Fixed one-minute windows per client address and per user with `rate-limiter-flexible` (a well-kept library: atomic
 * Redis scripts). While Redis cannot answer, each gateway instance counts in its own memory (so the effective limit
 * is the limit times the number of instances) and asks Redis again once it answers (`RedisAvailability`): a Redis
 * outage never closes the gateway, and a hung Redis costs one command timeout, not one per request. `bucket` names
 * the counter: the shared default, or a route with its own limit.
 */
export class RateLimits extends Context.Service<
  RateLimits,
  {
    /**
     * Counts one request of `key` against `perMinute` in the bucket: sends the count at once and returns the wait for
     * its answer (RateLimited when over): counts started in the same event-loop turn go to
     * Redis in one write (the gateway starts the address's count, checks the token, then starts the user's).
     */
    start(
      subject: Subject,
      bucket: string,
      key: string,
      perMinute: number,
    ): Effect.Effect<Effect.Effect<Quota, RateLimited>>
  }
>()("gateway/RateLimits") {
  /**
   * Counters in Redis when configured (over the process's shared `RedisConnection`, checked at start), otherwise in
   * memory.
   */
  static readonly layer = (options: RateLimitsOptions) =>
    Option.isSome(options.redisUrl)
      ? Layer.effect(
          RateLimits,
          Effect.flatMap(RedisConnection, (redis: Redis) => make(options.prefix, redis)),
        ).pipe(Layer.provide(RedisConnection.fromEnvironment))
      : Layer.effect(RateLimits, make(options.prefix, undefined))
}

const make = (prefix: string, redis: Redis | undefined) =>
  Effect.sync(() => {
    const availability = redis === undefined ? undefined : availabilityOf(redis)
    const limiters = new Map<string, { readonly shared?: RateLimiterAbstract; readonly local: RateLimiterAbstract }>()
    const limiterOf = (subject: Subject, bucket: string, points: number) => {
      const name = `${subject}:${bucket}:${points}`
      let limiter = limiters.get(name)
      if (limiter === undefined) {
        const settings = { keyPrefix: `${prefix}:${name}`, points, duration: 60 }
        limiter = {
          local: new RateLimiterMemory(settings),
          ...(redis === undefined ? {} : { shared: new RateLimiterRedis({ ...settings, storeClient: redis }) }),
        }
        limiters.set(name, limiter)
      }
      return limiter
    }
    // Redis while it answers; its failure (anything but a refusal) counts here and in this process's memory.
    const consume = (subject: Subject, bucket: string, key: string, points: number): Promise<RateLimiterRes> => {
      const limiter = limiterOf(subject, bucket, points)
      if (limiter.shared === undefined || !availability?.up()) return limiter.local.consume(key)
      return limiter.shared.consume(key).catch((rejection: unknown) => {
        if (rejection instanceof RateLimiterRes) throw rejection
        if (!isReply(rejection)) availability.failed(rejection)
        return limiter.local.consume(key)
      })
    }
    const answer = (perMinute: number, outcome: Outcome): Effect.Effect<Quota, RateLimited> => {
      if (outcome.ok) {
        return Effect.succeed({
          limit: perMinute,
          remaining: Math.max(0, outcome.res.remainingPoints),
          resetSeconds: Math.ceil(outcome.res.msBeforeNext / 1000),
        })
      }
      const rejection = outcome.rejection
      return rejection instanceof RateLimiterRes
        ? Effect.fail(
            new RateLimited({
              limit: perMinute,
              retryAfter: Math.max(1, Math.ceil(rejection.msBeforeNext / 1000)),
            }),
          )
        : // Neither Redis nor the memory limiter answered: let the request through (logged).
          Effect.as(Effect.logWarning("rate limiter unavailable", { error: String(rejection) }), {
            limit: perMinute,
            remaining: perMinute,
            resetSeconds: 60,
          })
    }
    const start = (subject: Subject, bucket: string, key: string, perMinute: number) =>
      Effect.sync(() => {
        const pending: Promise<Outcome> = consume(subject, bucket, key, perMinute).then(
          (res) => ({ ok: true, res }),
          (rejection: unknown) => ({ ok: false, rejection }),
        )
        return Effect.flatMap(
          Effect.promise(() => pending),
          (outcome) => answer(perMinute, outcome),
        )
      })
    return RateLimits.of({ start })
  })

type Outcome = { readonly ok: true; readonly res: RateLimiterRes } | { readonly ok: false; readonly rejection: unknown }
