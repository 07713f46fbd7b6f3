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
  /**
   * Counts one point of `key` when the answer is known at once, without an effect (a synced limit's, for the
   * gateway's hot path): the window, or RateLimitExceeded when over; undefined, and nothing counted, when the count
   * needs Redis (an exact limit: then `start` or `consume`).
   */
  countNow(key: string): Window | RateLimitExceeded | undefined
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

/** The counting operations of a limit counted locally and synchronised with Redis (`RateLimit.synced`). */
export type SyncedLimiter = Pick<Limiter, "start" | "consume" | "countNow">

/**
 * How often a synced limit sends its counts to Redis and reads back the shared ones, by default. The excess over a
 * limit grows with it (about twice this long of every instance's requests, see `RateLimit.synced`) and the Redis
 * work falls with it (one write per key and instance per interval, whatever the request rate): at 100 ms a client
 * at 1,000 requests a second costs each instance 10 writes a second instead of 1,000, and the excess stays a small
 * share of the gateway's default limits (1,200 a minute): two instances at 20 requests a second each, the
 * most a client within that limit sends, add at most about 10 requests to a minute's window.
 */
export const DEFAULT_SYNC_MS = 100

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
    /**
     * The limiter of one limit, counted exactly: every point goes to Redis as it happens (made once per limit and
     * kept: each is a few objects, no connection of its own).
     */
    limiter(options: LimiterOptions): Limiter
    /**
     * The same limit counted in this process's memory and synchronised with Redis (as Kong's and Envoy's local +
     * global limits): a point is decided at once, from the key's shared count as Redis last answered it plus this
     * instance's points since; every sync interval `s` the instance sends each key's new points to Redis (the same
     * script, key and window as `limiter`'s, all keys in one pipelined write) and reads back the shared counts.
     * Cheaper per request (no Redis command on the request's path, one per key and interval), at the price of a
     * bounded excess:
     *
     * Let t* be when the L-th point of a key's window is counted, on any instance; d the lateness of a sync (its
     * timer's and event loop's delay, plus Redis's round trip). Each instance sends a point at most `s` after it
     * counted it (its sync is due `s` after its first unsent point), so every point counted before t* is in Redis by
     * t* + s + d. Instance i admits after t* only while the shared count it last read was taken before then: the
     * points it counts up to t* + s + d, and, should it count one later (idle until then), those of the s + d until
     * the sync that point is due for answers. So with r_i requests a second for the key at instance i:
     *
     *   L ≤ admitted ≤ L + Σ_i r_i × 2(s + d)       (N instances at r each: L + 2 × N × r × (s + d))
     *
     * and never more than the points of the others that i has not seen: one instance admits exactly L (it knows its
     * own points). Not fewer than L: an instance refuses only once the points it knows of reach L, and they all
     * happened. A Redis outage: points that cannot be sent stay this instance's (as `limiter`'s memory counts do).
     * With `syncMs` 0, or without Redis, the same as `limiter`.
     */
    synced(options: LimiterOptions): SyncedLimiter
  }
>()("shared/RateLimit") {
  /** Counts in this process's memory only. */
  static readonly layerMemory: Layer.Layer<RateLimit> = Layer.sync(RateLimit, () => {
    const limiter = (options: LimiterOptions) => makeLimiter(options, undefined)
    return RateLimit.of({ limiter, synced: limiter })
  })

  /**
   * Counts in Redis over the process's `RedisConnection`, in memory while it cannot answer; synced limits send their
   * counts every `syncMs` (0: every point at once, as `limiter`), and once more when the layer closes.
   */
  static readonly layerRedisWith = (options: {
    readonly syncMs: number
  }): Layer.Layer<RateLimit, never, RedisConnection> =>
    Layer.effect(
      RateLimit,
      Effect.gen(function* () {
        const redis = yield* RedisConnection
        const limiter = (limit: LimiterOptions) => makeLimiter(limit, redis)
        if (options.syncMs <= 0) return RateLimit.of({ limiter, synced: limiter })
        const sync = makeSync(redis, options.syncMs)
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => sync.close()).pipe(Effect.timeout("1 second"), Effect.ignore),
        )
        return RateLimit.of({ limiter, synced: (limit) => makeSynced(limit, redis, sync) })
      }),
    )

  /** Counts in Redis over the process's `RedisConnection` (synced limits every `DEFAULT_SYNC_MS`). */
  static readonly layerRedis: Layer.Layer<RateLimit, never, RedisConnection> = RateLimit.layerRedisWith({
    syncMs: DEFAULT_SYNC_MS,
  })

  /** Redis when `REDIS_URL` is set (over the shared `RedisConnection.fromEnvironment`), otherwise memory. */
  static readonly layer = Layer.unwrap(
    Effect.map(Config.option(Config.Redacted("REDIS_URL")), (url) =>
      Option.isSome(url)
        ? RateLimit.layerRedis.pipe(Layer.provide(RedisConnection.fromEnvironment))
        : RateLimit.layerMemory,
    ),
  )
}

const makeLimiter = (options: LimiterOptions, redis: Redis | undefined): Limiter => {
  const availability = redis === undefined ? undefined : availabilityOf(redis)
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
    countNow: () => undefined,
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

// A key's count in a synced limit, for its current window.
interface Count {
  /** The key's shared count as Redis last answered it (this instance's points sent until then included). */
  known: number
  /** Points sent to Redis whose answer has not come back. */
  sending: number
  /** Points counted here since the last send. */
  unsent: number
  /** When the window ends (Redis's time to live when it last answered; a fresh window's full length before that). */
  resetAt: number
}

// A synced limit as the synchronisation sees it: sends its unsent points, issuing every command before returning.
interface Flushable {
  flush(redisUp: boolean): Promise<void>
}

// One process's synchronisation: the synced limits with unsent points are flushed together, `syncMs` after the first
// of them was counted, so that every command of a sync goes out in the same event-loop turn and the connection's
// auto-pipelining writes them at once (one round trip). No timer runs while nothing is counted.
const makeSync = (redis: Redis, syncMs: number) => {
  const availability = availabilityOf(redis)
  const waiting = new Set<Flushable>()
  let timer: ReturnType<typeof setTimeout> | undefined
  let closed = false
  const flush = () => {
    timer = undefined
    const limits = [...waiting]
    waiting.clear()
    const up = availability.up()
    return Promise.all(limits.map((limit) => limit.flush(up))).then(() => {})
  }
  return {
    availability,
    waiting: (limit: Flushable) => {
      waiting.add(limit)
      if (timer !== undefined || closed) return
      timer = setTimeout(flush, syncMs)
      timer.unref()
    },
    // The last points go to Redis as the process stops: the other instances see them.
    close: () => {
      closed = true
      clearTimeout(timer)
      return flush()
    },
  }
}

const makeSynced = (options: LimiterOptions, redis: Redis, sync: ReturnType<typeof makeSync>): SyncedLimiter => {
  // The library's script, key and window (`<keyPrefix>:<key>`, its time to live the window): exact and synced
  // counts of one key add up, and a sync is its `penalty` (count without refusing), answered with the shared count.
  const shared = new RateLimiterRedis({
    keyPrefix: options.keyPrefix,
    points: options.points,
    duration: options.durationSeconds,
    storeClient: redis,
  })
  const durationMs = options.durationSeconds * 1000
  const counts = new Map<string, Count>()
  const unsent = new Map<string, Count>()
  let sweepAt = Date.now() + durationMs
  const limit: Flushable = {
    flush: (up) => {
      const sends: Array<Promise<void>> = []
      for (const [key, count] of unsent) {
        // Its window ended here before the sync: the ended window's points are not sent into the next one.
        if (counts.get(key) !== count) continue
        const points = count.unsent
        count.unsent = 0
        // Redis cannot answer: the points stay this instance's, as `limiter`'s memory counts do during an outage.
        if (!up) {
          count.known += points
          continue
        }
        count.sending += points
        sends.push(
          shared.penalty(key, points).then(
            (res) => {
              // Answers come back in the order sent: this count holds every earlier send, none of the later ones.
              count.sending -= points
              count.known = res.consumedPoints
              count.resetAt = Date.now() + res.msBeforeNext
            },
            (error: unknown) => {
              // Not sent again: a command that timed out may have counted, and a reply error would repeat.
              count.sending -= points
              count.known += points
              if (!isReply(error)) sync.availability.failed(error)
            },
          ),
        )
      }
      unsent.clear()
      const now = Date.now()
      if (now >= sweepAt) {
        sweepAt = now + durationMs
        for (const [key, count] of counts) if (now >= count.resetAt && count.sending === 0) counts.delete(key)
      }
      return Promise.all(sends).then(() => {})
    },
  }
  const countNow = (key: string): Window | RateLimitExceeded => {
    const now = Date.now()
    let current = counts.get(key)
    if (current === undefined || now >= current.resetAt) {
      current = { known: 0, sending: 0, unsent: 0, resetAt: now + durationMs }
      counts.set(key, current)
    }
    // A refused point counts too, as the library's consume counts it: the key's number means the same either way.
    current.unsent += 1
    unsent.set(key, current)
    sync.waiting(limit)
    const consumed = current.known + current.sending + current.unsent
    const msBeforeNext = Math.max(0, current.resetAt - now)
    return consumed > options.points
      ? new RateLimitExceeded({ msBeforeNext })
      : { consumed, remaining: Math.max(0, options.points - consumed), msBeforeNext }
  }
  const count = (key: string): Effect.Effect<Window, RateLimitExceeded> => {
    const counted = countNow(key)
    return counted instanceof RateLimitExceeded ? Effect.fail(counted) : Effect.succeed(counted)
  }
  return {
    start: (key) => Effect.sync(() => count(key)),
    countNow,
    consume: (key) => Effect.suspend(() => count(key)),
  }
}
