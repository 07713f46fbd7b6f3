import {
  Clock,
  Config,
  Context,
  Duration,
  Effect,
  Cache as EffectCache,
  Equal,
  Exit,
  Fiber,
  Hash,
  Layer,
  Metric,
  MutableHashMap,
  Option,
  References,
  Schema,
  Semaphore,
  Tracer,
} from "effect"
import type { Redis } from "ioredis"
import { availabilityOf, isReply, RedisConnection, type RedisError, type RedisOptions } from "./Redis.ts"

/** A cache operation failed (Redis unreachable, bad TTL); carries the driver error as cause. */
export class CacheError extends Schema.TaggedError<CacheError>()("CacheError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** Options of `Cache.set`; without `ttlSeconds` the entry lives until deleted (or evicted from memory). */
export interface CacheSetOptions {
  readonly ttlSeconds?: number
}

/** Settings of the Redis cache; `prefix` (the service name) namespaces every key as `<prefix>:<key>`. */
export interface RedisCacheOptions extends Omit<RedisOptions, "connectionName"> {
  readonly prefix: string
}

/** Settings of the in-process cache; `maxEntries` (default 10 000) bounds it, least recently used go first. */
export interface MemoryCacheOptions {
  readonly prefix: string
  readonly maxEntries?: number
  /**
   * With Redis: `"memory"` serves from this process's memory (bounded by `maxEntries`) while Redis is unavailable, and
   * from Redis again once it answers (what was written meanwhile stays in memory only). Default: operations fail with
   * `CacheError` while Redis is unavailable (at once, see `RedisAvailability`).
   */
  readonly fallback?: "memory"
}

/** A string key/value cache shared by a service's instances (Redis) or local to the process (memory). */
export class Cache extends Context.Service<
  Cache,
  {
    get(key: string): Effect.Effect<Option.Option<string>, CacheError>
    set(key: string, value: string, options?: CacheSetOptions): Effect.Effect<void, CacheError>
    delete(key: string): Effect.Effect<void, CacheError>
    /**
     * Gets and deletes in one step (Redis GETDEL): of concurrent takes of a key, exactly one gets its value (a
     * one-time code redeemed once).
     */
    take(key: string): Effect.Effect<Option.Option<string>, CacheError>
    /**
     * Returns the cached value or runs `compute` once per key in this process, caches and returns its result
     * (a non-positive TTL is a defect).
     * Cache failures are logged and degrade to computing (the cache is an optimisation); `compute`'s own errors
     * are never cached and reach every waiting caller. The computation outlives an interrupted first caller.
     */
    getOrSet<E, R>(key: string, ttlSeconds: number, compute: Effect.Effect<string, E, R>): Effect.Effect<string, E, R>
  }
>()("shared/Cache") {
  /**
   * A Redis cache with a connection of its own. Fails fast: the layer connects and fails with a `CacheError` naming
   * host and port when Redis cannot be reached at start; afterwards ioredis reconnects on its own, a command fails
   * after `commandTimeoutMs` at most and then every command fails at once until Redis answers again (see
   * `RedisAvailability`); the "redis" readiness check (PING) reports "degraded" meanwhile. The connection is closed
   * (QUIT) with the layer.
   */
  static readonly layerRedis = (options: RedisCacheOptions) =>
    Cache.layerOn(options.prefix).pipe(
      Layer.provide(RedisConnection.layer({ ...options, connectionName: options.prefix })),
      Layer.catchTag("RedisError", unconnected),
    )

  /** A Redis cache over the process's `RedisConnection`; `fallback` as in `MemoryCacheOptions`. */
  static readonly layerOn = (prefix: string, options: Omit<MemoryCacheOptions, "prefix"> = {}) =>
    Layer.effect(
      Cache,
      Effect.gen(function* () {
        const checked = yield* checkPrefix(prefix)
        const redis = redisBackend(yield* RedisConnection)
        return yield* make(
          checked,
          "redis",
          options.fallback === "memory"
            ? withFallback(redis, yield* memoryBackend(options.maxEntries ?? 10_000))
            : redis,
        )
      }),
    )

  /** An in-process cache (the embedded default): TTLs honoured, size bounded with least-recently-used eviction. */
  static readonly layerMemory = (options: MemoryCacheOptions) =>
    Layer.effect(
      Cache,
      Effect.gen(function* () {
        const prefix = yield* checkPrefix(options.prefix)
        return yield* make(prefix, "memory", yield* memoryBackend(options.maxEntries ?? 10_000))
      }),
    )

  /**
   * Redis when `REDIS_URL` is set (an empty value counts as unset), otherwise the in-process cache. Every cache made
   * this way in one application shares the one connection of `RedisConnection.fromEnvironment`.
   */
  static readonly layer = (options: MemoryCacheOptions) =>
    Layer.unwrap(
      Effect.gen(function* () {
        const url = yield* Config.option(Config.Redacted("REDIS_URL"))
        return Option.isSome(url) ? Cache.layerOnShared(options.prefix, options) : Cache.layerMemory(options)
      }),
    )

  /**
   * A Redis cache over the application's one connection, `RedisConnection.fromEnvironment` (`REDIS_URL` required);
   * `fallback` as in `MemoryCacheOptions`.
   */
  static readonly layerOnShared = (prefix: string, options: Omit<MemoryCacheOptions, "prefix"> = {}) =>
    Cache.layerOn(prefix, options).pipe(
      Layer.provide(RedisConnection.fromEnvironment),
      Layer.catchTag("RedisError", unconnected),
    )
}

// A Redis cache whose connection cannot be made fails with a CacheError (what callers of the cache layers handle),
// naming host and port as the connection's error does.
const unconnected = (error: RedisError) =>
  Layer.effect(Cache, Effect.fail(new CacheError({ message: error.message, cause: error.cause })))

/** A value held in the process's memory, with the time it stops being served (epoch ms; `Infinity`: never). */
export interface Held<A> {
  readonly value: A
  readonly expiresAt: number
}

/**
 * The one in-memory cache of the platform: every cache a process keeps in its own memory is one of these (the memory
 * `Cache` and its fallback, `getOrSet`'s single flight, permission answers, accepted access tokens, "not revoked"
 * answers, revocations held in memory). It is effect's `Cache`, with:
 *
 * - single flight: concurrent `get`s of a key that is not held share one lookup, which stops only when every caller
 *   waiting for it has stopped waiting;
 * - an expiry per entry, on the `Clock` of the caller: `expiresAt(value, key, askedAt)` counts from when the lookup was
 *   asked, so a slow answer is not served for longer; a time not after now serves the callers of that lookup and
 *   keeps nothing (failures are never kept);
 * - a bound: at most `capacity` entries, and past it the least recently used (read or written) goes first. That is
 *   the one eviction rule of every in-memory cache here (effect's `Cache` moves an entry to the back on every hit
 *   and drops from the front);
 * - invalidation of one key or of all: a lookup in flight then still answers those already waiting for it, but is
 *   not kept, and the next `get` asks again.
 */
export interface LocalCache<K, A, E = never> {
  /** The value held for `key`, or looked up once for all concurrent callers. */
  get(key: K): Effect.Effect<A, E>
  /** What is held for `key`, without looking it up: none when absent, expired or still being looked up. */
  peek(key: K): Effect.Effect<Option.Option<Held<A>>>
  /**
   * `peek` outside any fiber, on the wall clock (`Date.now`, not the caller's `Clock`): the value held for `key`, or
   * undefined. A read as `get`'s (the key moves to the back). For a hot path that answers from what is held and
   * leaves the misses to `get` (the gateway's admitted requests).
   */
  peekNow(key: K): A | undefined
  /** Holds `value` until `expiresAt` (epoch ms on the `Clock`; `Infinity`: until evicted); a past time drops the key. */
  set(key: K, value: A, expiresAt: number): Effect.Effect<void>
  invalidate(key: K): Effect.Effect<void>
  readonly invalidateAll: Effect.Effect<void>
}

// What effect's Cache holds: the value, its expiry, and how long from when it is stored that is (ms; not kept if ≤ 0).
interface Entry<A> extends Held<A> {
  readonly ttlMs: number
}

const entryOf = <A>(value: A, expiresAt: number, now: number): Entry<A> => ({
  value,
  expiresAt,
  ttlMs: expiresAt - now,
})

// The span a lookup runs under: its caller's (see `detached`).
const CallerSpan = Context.Reference<Tracer.AnySpan | undefined>("shared/Cache/CallerSpan", {
  defaultValue: () => undefined,
})

// Effect's Cache keeps each entry's fiber, and a finished fiber still holds the span and stack frame it started under:
// entries are made without them, so that a held value does not keep a request's spans alive (about 2 KB an entry,
// measured). The lookup runs under its caller's span again, and its own spans stay in the caller's trace.
const detached = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
  Effect.flatMap(Effect.serviceOption(Tracer.ParentSpan), (span) =>
    Effect.updateContext(effect, (context: Context.Context<never>) =>
      Context.add(
        Context.omit(Tracer.ParentSpan, References.CurrentStackFrame)(context),
        CallerSpan,
        Option.getOrUndefined(span),
      ),
    ),
  )

const underCallerSpan = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.service(CallerSpan), (span) =>
    span === undefined ? effect : Effect.withParentSpan(effect, span),
  )

/** A `LocalCache` over `lookup` (see `LocalCache`); the services of `lookup` are taken where it is made. */
export const makeLocal = <K, A, E = never, R = never>(options: {
  readonly capacity: number
  readonly lookup: (key: K) => Effect.Effect<A, E, R>
  readonly expiresAt: (value: A, key: K, askedAt: number) => number
  /**
   * `peekNow` of a key in the last quarter of its life asks again in the background (one lookup per key at a time)
   * and keeps the new answer with its own expiry: a key read all the time does not fall out between two lookups
   * (where every read would miss until the new answer came). What is held is still never older than its expiry
   * says; an invalidation meanwhile discards the answer. A failed lookup keeps nothing (the held value expires).
   */
  readonly refreshAhead?: boolean
}): Effect.Effect<LocalCache<K, A, E>, never, R> =>
  Effect.flatMap(Effect.context<R>(), (services) => makeLocalWith(options, services))

const makeLocalWith = <K, A, E, R>(
  options: Parameters<typeof makeLocal<K, A, E, R>>[0],
  services: Context.Context<R>,
): Effect.Effect<LocalCache<K, A, E>, never, R> =>
  Effect.map(
    EffectCache.makeWith(
      (key: K) =>
        Effect.gen(function* () {
          const askedAt = yield* Clock.currentTimeMillis
          const value = yield* options.lookup(key)
          return entryOf(value, options.expiresAt(value, key, askedAt), yield* Clock.currentTimeMillis)
        }).pipe(underCallerSpan),
      {
        capacity: options.capacity,
        // A zero time to live hands the lookup's exit to its callers and keeps nothing: how failures are never kept.
        timeToLive: (exit) =>
          Exit.isSuccess(exit) && exit.value.ttlMs > 0 ? Duration.millis(exit.value.ttlMs) : Duration.zero,
      },
    ),
    (cache): LocalCache<K, A, E> => {
      // Invalidations so far: a background lookup started before one is not kept.
      let generation = 0
      const refreshing = new Set<K>()
      const refresh = (key: K) => {
        if (refreshing.has(key)) return
        refreshing.add(key)
        const started = generation
        Effect.runForkWith(services)(
          Effect.gen(function* () {
            const askedAt = yield* Clock.currentTimeMillis
            const value = yield* options.lookup(key)
            if (generation !== started) return
            const now = yield* Clock.currentTimeMillis
            yield* EffectCache.invalidate(cache, key)
            yield* EffectCache.set(cache, key, entryOf(value, options.expiresAt(value, key, askedAt), now))
          }).pipe(Effect.ignore, Effect.ensuring(Effect.sync(() => refreshing.delete(key)))),
        )
      }
      return {
        // A held value is answered at once; only a miss (which may start a lookup) pays for `detached`.
        get: (key) =>
          Effect.flatMap(EffectCache.getSuccess(cache, key), (held) =>
            Option.isSome(held)
              ? Effect.succeed(held.value.value)
              : detached(Effect.map(EffectCache.get(cache, key), (entry) => entry.value)),
          ),
        peek: (key) => EffectCache.getSuccess(cache, key),
        // Effect's Cache exposes its map and entries (each with the fiber of its lookup): a finished, successful lookup
        // not past either expiry is held. Moved to the back as effect's own read does; an expired one dropped, as there.
        peekNow: (key) => {
          const found = MutableHashMap.get(cache.map, key)
          if (Option.isNone(found)) return undefined
          const entry = found.value
          const exit = entry.fiber.pollUnsafe()
          if (exit === undefined || !Exit.isSuccess(exit)) return undefined
          const now = Date.now()
          MutableHashMap.remove(cache.map, key)
          if ((entry.expiresAt !== undefined && now >= entry.expiresAt) || now >= exit.value.expiresAt) return undefined
          MutableHashMap.set(cache.map, key, entry)
          if (options.refreshAhead && exit.value.expiresAt - now < exit.value.ttlMs / 4) refresh(key)
          return exit.value.value
        },
        // Dropped first, so that a write (like a read) moves the key to the back: effect's set keeps a key in place.
        set: (key, value, expiresAt) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.andThen(
              EffectCache.invalidate(cache, key),
              detached(EffectCache.set(cache, key, entryOf(value, expiresAt, now))),
            ),
          ),
        invalidate: (key) =>
          Effect.suspend(() => {
            generation++
            return EffectCache.invalidate(cache, key)
          }),
        invalidateAll: Effect.suspend(() => {
          generation++
          return EffectCache.invalidateAll(cache)
        }),
      }
    },
  )

/** A `LocalCache` holding only what is `set` in it: it has no lookup, hence no `get`. */
export const makeLocalStore = <K, A>(capacity: number): Effect.Effect<Omit<LocalCache<K, A>, "get">> =>
  makeLocal<K, A>({
    capacity,
    lookup: () => Effect.die(new Error("a local store has no lookup")),
    expiresAt: () => 0,
  })

// What an implementation provides: full (prefixed) keys, TTLs in milliseconds, already validated.
interface Backend {
  get(key: string): Effect.Effect<string | undefined, CacheError>
  set(key: string, value: string, ttlMs: number | undefined): Effect.Effect<void, CacheError>
  delete(key: string): Effect.Effect<void, CacheError>
  take(key: string): Effect.Effect<string | undefined, CacheError>
}

const lookups = Metric.counter("cache_lookups_total", { description: "Cache lookups by result", incremental: true })
const failures = Metric.counter("cache_errors_total", { description: "Failed cache operations", incremental: true })

const make = (prefix: string, backend: "redis" | "memory", impl: Backend) =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const span = { kind: "client", attributes: { "cache.backend": backend, "cache.prefix": prefix } } as const
    const full = (key: string) => `${prefix}:${key}`
    const hit = Metric.withAttributes(lookups, { backend, result: "hit" })
    const miss = Metric.withAttributes(lookups, { backend, result: "miss" })
    const failed = Metric.withAttributes(failures, { backend })
    const counted = <A>(effect: Effect.Effect<A, CacheError>) => Effect.tapError(effect, () => Metric.update(failed, 1))

    const get = Effect.fn(
      "Cache.get",
      span,
    )(function* (key: string) {
      const value = yield* counted(impl.get(full(key)))
      yield* Metric.update(value === undefined ? miss : hit, 1)
      return Option.fromUndefinedOr(value)
    })

    const set = Effect.fn(
      "Cache.set",
      span,
    )(function* (key: string, value: string, options?: CacheSetOptions) {
      const ttlMs = options?.ttlSeconds === undefined ? undefined : yield* toMillis(options.ttlSeconds)
      yield* counted(impl.set(full(key), value, ttlMs))
    })

    const del = Effect.fn(
      "Cache.delete",
      span,
    )(function* (key: string) {
      yield* counted(impl.delete(full(key)))
    })

    const take = Effect.fn(
      "Cache.take",
      span,
    )(function* (key: string) {
      const value = yield* counted(impl.take(full(key)))
      yield* Metric.update(value === undefined ? miss : hit, 1)
      return Option.fromUndefinedOr(value)
    })

    const lookupOrCompute = <E, R>(key: string, ttlSeconds: number, compute: Effect.Effect<string, E, R>) =>
      Effect.gen(function* () {
        const cached = yield* get(key).pipe(Effect.catch(degraded(key, Option.none<string>())))
        if (Option.isSome(cached)) return cached.value
        const value = yield* compute
        yield* set(key, value, { ttlSeconds }).pipe(Effect.catch(degraded(key, undefined)))
        return value
      })

    // The backend keeps the values; the kernel only holds each computation while it runs (it expires at once).
    const flights = yield* makeLocal({
      capacity: Number.POSITIVE_INFINITY,
      lookup: (flight: Flight) => flight.compute,
      expiresAt: () => 0,
    })

    const getOrSet = <E, R>(key: string, ttlSeconds: number, compute: Effect.Effect<string, E, R>) =>
      Effect.suspend((): Effect.Effect<string, E, R> => {
        if (!(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) return Effect.die(toMillisError(ttlSeconds))
        const flight = new Flight(
          full(key),
          lookupOrCompute(key, ttlSeconds, compute) as Effect.Effect<string, unknown>,
        )
        // Each caller waits from a fiber of the layer's scope: the computation (which stops only when nobody waits)
        // outlives callers that stop waiting, still stores its value, and serves those who come later meanwhile.
        // It runs with its first caller's services, which provide R; its failure is that caller's E.
        return Effect.flatMap(Effect.forkIn(flights.get(flight), scope), Fiber.join) as Effect.Effect<string, E, R>
      }).pipe(Effect.withSpan("Cache.getOrSet", span))

    return Cache.of({ get, set, delete: del, take, getOrSet })
  })

// One getOrSet in flight: equal to any other of its key whatever it computes, so that concurrent getOrSets of a key
// join the first one's computation (the kernel's single flight).
class Flight implements Equal.Equal {
  readonly key: string
  readonly compute: Effect.Effect<string, unknown>
  constructor(key: string, compute: Effect.Effect<string, unknown>) {
    this.key = key
    this.compute = compute
  }
  [Equal.symbol](that: Equal.Equal): boolean {
    return that instanceof Flight && that.key === this.key
  }
  [Hash.symbol](): number {
    return Hash.string(this.key)
  }
}

const degraded =
  <A>(key: string, fallback: A) =>
  (error: CacheError) =>
    Effect.as(Effect.logWarning("cache unavailable, computing the value", { key, error: error.message }), fallback)

const toMillisError = (ttlSeconds: number) =>
  new CacheError({ message: `ttlSeconds must be a positive number, got ${ttlSeconds}`, cause: null })

const toMillis = (ttlSeconds: number) =>
  Number.isFinite(ttlSeconds) && ttlSeconds > 0
    ? Effect.succeed(Math.ceil(ttlSeconds * 1000))
    : Effect.fail(toMillisError(ttlSeconds))

const checkPrefix = (prefix: string) =>
  /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(prefix)
    ? Effect.succeed(prefix)
    : Effect.fail(new CacheError({ message: `invalid cache prefix ${JSON.stringify(prefix)}`, cause: null }))

const redisFailure = (what: string) => (cause: unknown) =>
  new CacheError({ message: `redis ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause })

const skipped = () =>
  Effect.fail(new CacheError({ message: "redis unavailable (waiting for it to answer again)", cause: null }))

// Runs a command unless Redis is known to be down; a failure (no answer) marks it down.
const guarded = <A>(redis: Redis, what: string, run: () => Promise<A>): Effect.Effect<A, CacheError> => {
  const availability = availabilityOf(redis)
  return availability.up()
    ? Effect.tryPromise({ try: run, catch: redisFailure(what) }).pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            if (!isReply(error.cause)) availability.failed(error.cause)
          }),
        ),
      )
    : skipped()
}

// Redis first; its failure (or Redis known down) serves the operation from memory instead.
const withFallback = (redis: Backend, memory: Backend): Backend => ({
  get: (key) => Effect.catch(redis.get(key), () => memory.get(key)),
  set: (key, value, ttlMs) => Effect.catch(redis.set(key, value, ttlMs), () => memory.set(key, value, ttlMs)),
  delete: (key) =>
    Effect.andThen(
      memory.delete(key),
      Effect.catch(redis.delete(key), () => Effect.void),
    ),
  take: (key) => Effect.catch(redis.take(key), () => memory.take(key)),
})

const redisBackend = (redis: Redis): Backend => ({
  get: (key) => guarded(redis, "GET", () => redis.get(key)).pipe(Effect.map((value) => value ?? undefined)),
  set: (key, value, ttlMs) =>
    Effect.asVoid(
      guarded(redis, "SET", () => (ttlMs === undefined ? redis.set(key, value) : redis.set(key, value, "PX", ttlMs))),
    ),
  delete: (key) => Effect.asVoid(guarded(redis, "DEL", () => redis.del(key))),
  take: (key) => guarded(redis, "GETDEL", () => redis.getdel(key)).pipe(Effect.map((value) => value ?? undefined)),
})

// This process's memory, a kernel store. No lock for a write (one step); a take is a read then a delete, made one step
// for other takes by a lock of its own.
const memoryBackend = (maxEntries: number): Effect.Effect<Backend> =>
  Effect.map(Effect.zip(makeLocalStore<string, string>(maxEntries), Semaphore.make(1)), ([store, taking]) => ({
    get: (key) => Effect.map(store.peek(key), (entry) => Option.getOrUndefined(entry)?.value),
    set: (key, value, ttlMs) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        store.set(key, value, ttlMs === undefined ? Number.POSITIVE_INFINITY : now + ttlMs),
      ),
    delete: (key) => store.invalidate(key),
    take: (key) =>
      taking.withPermits(1)(
        Effect.flatMap(store.peek(key), (entry) =>
          Effect.as(store.invalidate(key), Option.getOrUndefined(entry)?.value),
        ),
      ),
  }))
