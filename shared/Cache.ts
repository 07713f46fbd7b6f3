import { Clock, Config, Context, Deferred, Effect, Layer, Metric, Option, Schema } from "effect"
import type { Redis } from "ioredis"
import { availabilityOf, isReply, RedisConnection, type RedisError, type RedisOptions } from "./Redis.ts"

/** A cache operation failed (Redis unreachable, bad TTL, non-integer counter); carries the driver error as cause. */
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
     * Returns the cached value or runs `compute` once per key in this process, caches and returns its result
     * (a non-positive TTL is a defect).
     * Cache failures are logged and degrade to computing (the cache is an optimisation); `compute`'s own errors
     * are never cached and reach every waiting caller. The computation outlives an interrupted first caller.
     */
    getOrSet<E, R>(key: string, ttlSeconds: number, compute: Effect.Effect<string, E, R>): Effect.Effect<string, E, R>
    /** Atomically adds one and returns the new count; the TTL starts at the first increment (a fixed window). */
    increment(key: string, ttlSeconds: number): Effect.Effect<number, CacheError>
    /** Atomically sets the key only when it is absent (a short lease); true when this call set it. */
    setIfAbsent(
      key: string,
      value: string,
      options: { readonly ttlSeconds: number },
    ): Effect.Effect<boolean, CacheError>
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
          options.fallback === "memory" ? withFallback(redis, memoryBackend(options.maxEntries ?? 10_000)) : redis,
        )
      }),
    )

  /** An in-process cache (the embedded default): TTLs honoured, size bounded with least-recently-used eviction. */
  static readonly layerMemory = (options: MemoryCacheOptions) =>
    Layer.effect(
      Cache,
      Effect.gen(function* () {
        const prefix = yield* checkPrefix(options.prefix)
        return yield* make(prefix, "memory", memoryBackend(options.maxEntries ?? 10_000))
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

// What an implementation provides: full (prefixed) keys, TTLs in milliseconds, already validated.
interface Backend {
  get(key: string): Effect.Effect<string | undefined, CacheError>
  set(key: string, value: string, ttlMs: number | undefined): Effect.Effect<void, CacheError>
  delete(key: string): Effect.Effect<void, CacheError>
  increment(key: string, ttlMs: number): Effect.Effect<number, CacheError>
  setIfAbsent(key: string, value: string, ttlMs: number): Effect.Effect<boolean, CacheError>
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

    const increment = Effect.fn(
      "Cache.increment",
      span,
    )(function* (key: string, ttlSeconds: number) {
      return yield* counted(impl.increment(full(key), yield* toMillis(ttlSeconds)))
    })

    const setIfAbsent = Effect.fn(
      "Cache.setIfAbsent",
      span,
    )(function* (key: string, value: string, options: { readonly ttlSeconds: number }) {
      return yield* counted(impl.setIfAbsent(full(key), value, yield* toMillis(options.ttlSeconds)))
    })

    const inflight = new Map<string, Deferred.Deferred<string, unknown>>()

    const lookupOrCompute = <E, R>(key: string, ttlSeconds: number, compute: Effect.Effect<string, E, R>) =>
      Effect.gen(function* () {
        const cached = yield* get(key).pipe(Effect.catch(degraded(key, Option.none<string>())))
        if (Option.isSome(cached)) return cached.value
        const value = yield* compute
        yield* set(key, value, { ttlSeconds }).pipe(Effect.catch(degraded(key, undefined)))
        return value
      })

    const getOrSet = <E, R>(key: string, ttlSeconds: number, compute: Effect.Effect<string, E, R>) =>
      Effect.suspend((): Effect.Effect<string, E, R> => {
        if (!(Number.isFinite(ttlSeconds) && ttlSeconds > 0)) return Effect.die(toMillisError(ttlSeconds))
        const waiting = inflight.get(full(key)) as Deferred.Deferred<string, E> | undefined
        if (waiting) return Deferred.await(waiting)
        const deferred = Deferred.makeUnsafe<string, E>()
        inflight.set(full(key), deferred as Deferred.Deferred<string, unknown>)
        const leader = lookupOrCompute(key, ttlSeconds, compute).pipe(
          Effect.onExit((exit) =>
            Effect.andThen(
              Effect.sync(() => inflight.delete(full(key))),
              Deferred.done(deferred, exit),
            ),
          ),
        )
        return Effect.uninterruptible(Effect.forkIn(leader, scope)).pipe(Effect.andThen(Deferred.await(deferred)))
      }).pipe(Effect.withSpan("Cache.getOrSet", span))

    return Cache.of({ get, set, delete: del, getOrSet, increment, setIfAbsent })
  })

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

// Sets the TTL only when the counter has none, so the window starts with the first increment.
const INCREMENT = `local n = redis.call("INCR", KEYS[1])
if redis.call("PTTL", KEYS[1]) == -1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end
return n`

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
  increment: (key, ttlMs) => Effect.catch(redis.increment(key, ttlMs), () => memory.increment(key, ttlMs)),
  setIfAbsent: (key, value, ttlMs) =>
    Effect.catch(redis.setIfAbsent(key, value, ttlMs), () => memory.setIfAbsent(key, value, ttlMs)),
})

const redisBackend = (redis: Redis): Backend => ({
  get: (key) => guarded(redis, "GET", () => redis.get(key)).pipe(Effect.map((value) => value ?? undefined)),
  set: (key, value, ttlMs) =>
    Effect.asVoid(
      guarded(redis, "SET", () => (ttlMs === undefined ? redis.set(key, value) : redis.set(key, value, "PX", ttlMs))),
    ),
  delete: (key) => Effect.asVoid(guarded(redis, "DEL", () => redis.del(key))),
  increment: (key, ttlMs) =>
    guarded(redis, "INCR", () => redis.eval(INCREMENT, 1, key, ttlMs)).pipe(Effect.map(Number)),
  setIfAbsent: (key, value, ttlMs) =>
    guarded(redis, "SET NX", () => redis.set(key, value, "PX", ttlMs, "NX")).pipe(
      Effect.map((reply) => reply === "OK"),
    ),
})

interface Entry {
  readonly value: string
  readonly expiresAt: number | undefined
}

// A Map iterates in insertion order; re-inserting on every read keeps the least recently used first.
const memoryBackend = (maxEntries: number): Backend => {
  const entries = new Map<string, Entry>()
  const live = (key: string, now: number) => {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    entries.delete(key)
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) return undefined
    entries.set(key, entry)
    return entry
  }
  const store = (key: string, entry: Entry) => {
    entries.delete(key)
    entries.set(key, entry)
    for (const oldest of entries.keys()) {
      if (entries.size <= maxEntries) break
      entries.delete(oldest)
    }
  }
  return {
    get: (key) => Effect.map(Clock.currentTimeMillis, (now) => live(key, now)?.value),
    set: (key, value, ttlMs) =>
      Effect.map(Clock.currentTimeMillis, (now) =>
        store(key, { value, expiresAt: ttlMs === undefined ? undefined : now + ttlMs }),
      ),
    delete: (key) => Effect.sync(() => void entries.delete(key)),
    increment: (key, ttlMs) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const entry = live(key, now)
        const count = entry === undefined ? 0 : Number(entry.value)
        if (!Number.isSafeInteger(count)) {
          return Effect.fail(new CacheError({ message: `value at ${key} is not an integer`, cause: null }))
        }
        store(key, { value: String(count + 1), expiresAt: entry?.expiresAt ?? now + ttlMs })
        return Effect.succeed(count + 1)
      }),
    setIfAbsent: (key, value, ttlMs) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (live(key, now) !== undefined) return false
        store(key, { value, expiresAt: now + ttlMs })
        return true
      }),
  }
}
