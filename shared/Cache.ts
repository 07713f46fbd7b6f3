import { Clock, Config, Context, Deferred, Effect, Layer, Metric, Option, Redacted, Schema, type Scope } from "effect"
import type { Redis } from "ioredis"
import { type Health, register } from "./Health.ts"

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
export interface RedisCacheOptions {
  readonly url: Redacted.Redacted<string>
  readonly prefix: string
  /** Bound on the connection attempt at start and on each reconnect; default 5 s. */
  readonly connectTimeoutMs?: number
  /** Bound on each command; default 2 s. */
  readonly commandTimeoutMs?: number
}

/** Settings of the in-process cache; `maxEntries` (default 10 000) bounds it, least recently used go first. */
export interface MemoryCacheOptions {
  readonly prefix: string
  readonly maxEntries?: number
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
   * host and port when Redis cannot be reached at start; afterwards ioredis reconnects on its own, commands fail
   * after `commandTimeoutMs` and the "redis" readiness check (PING) reports it. The connection is closed (QUIT) with
   * the layer.
   */
  static readonly layerRedis = (options: RedisCacheOptions) =>
    Cache.layerOn(options.prefix).pipe(
      Layer.provide(RedisConnection.layer({ ...options, connectionName: options.prefix })),
    )

  /** A Redis cache over the process's `RedisConnection`. */
  static readonly layerOn = (prefix: string) =>
    Layer.effect(
      Cache,
      Effect.gen(function* () {
        const checked = yield* checkPrefix(prefix)
        return yield* make(checked, "redis", redisBackend(yield* RedisConnection))
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
        return Option.isSome(url)
          ? Cache.layerOn(options.prefix).pipe(Layer.provide(RedisConnection.fromEnvironment))
          : Cache.layerMemory(options)
      }),
    )
}

/**
 * A process's connection to Redis, for the caches and anything else that needs the raw client (the gateway's rate
 * limiter). Connected (and checked) at start, "redis" readiness check (PING), closed with the layer; commands issued
 * in one event-loop turn go out in one write (auto-pipelining) and fail at once while disconnected (no offline queue:
 * a cache or limiter degrades instead of waiting).
 */
export class RedisConnection extends Context.Service<RedisConnection, Redis>()("shared/RedisConnection") {
  static readonly layer = (options: Omit<RedisCacheOptions, "prefix"> & { readonly connectionName?: string }) =>
    Layer.effect(
      RedisConnection,
      Effect.gen(function* () {
        const redis = yield* connect(options)
        yield* register(
          "redis",
          Effect.tryPromise(() => redis.ping()),
        )
        return redis
      }),
    )

  /**
   * The connection to `REDIS_URL` (required here). One value: the caches and services of an application that all use
   * it share one connection, as layers are built once per application.
   */
  static readonly fromEnvironment: Layer.Layer<RedisConnection, CacheError | Config.ConfigError, Health> = Layer.unwrap(
    Effect.map(Config.Redacted("REDIS_URL"), (url) => RedisConnection.layer({ url, connectionName: "platform" })),
  )
}

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

const redisBackend = (redis: Redis): Backend => ({
  get: (key) =>
    Effect.tryPromise({ try: () => redis.get(key), catch: redisFailure("GET") }).pipe(
      Effect.map((value) => value ?? undefined),
    ),
  set: (key, value, ttlMs) =>
    Effect.asVoid(
      Effect.tryPromise({
        try: () => (ttlMs === undefined ? redis.set(key, value) : redis.set(key, value, "PX", ttlMs)),
        catch: redisFailure("SET"),
      }),
    ),
  delete: (key) => Effect.asVoid(Effect.tryPromise({ try: () => redis.del(key), catch: redisFailure("DEL") })),
  increment: (key, ttlMs) =>
    Effect.tryPromise({ try: () => redis.eval(INCREMENT, 1, key, ttlMs), catch: redisFailure("INCR") }).pipe(
      Effect.map(Number),
    ),
  setIfAbsent: (key, value, ttlMs) =>
    Effect.tryPromise({ try: () => redis.set(key, value, "PX", ttlMs, "NX"), catch: redisFailure("SET NX") }).pipe(
      Effect.map((reply) => reply === "OK"),
    ),
})

const connect = (
  options: Omit<RedisCacheOptions, "prefix"> & { readonly connectionName?: string },
): Effect.Effect<Redis, CacheError, Scope.Scope> =>
  Effect.gen(function* () {
    const url = Redacted.value(options.url)
    const where = describeUrl(url)
    const context = yield* Effect.context<never>()
    const log = (effect: Effect.Effect<void>) =>
      Effect.runForkWith(context)(Effect.annotateLogs(effect, { component: "redis", redis: where }))
    // Loaded only when Redis is configured: the embedded default never pays for the client at start.
    // ioredis is CommonJS: bundled, its exports sit on `default`; run from source, Node also names them.
    const ioredis = yield* Effect.promise(() => import("ioredis"))
    const Redis = ioredis.Redis ?? (ioredis as unknown as { default: typeof ioredis }).default.Redis
    let lastError: Error | undefined
    let started = false
    let connected = false

    const redis = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const redis = new Redis(url, {
          lazyConnect: true,
          connectTimeout: options.connectTimeoutMs ?? 5_000,
          commandTimeout: options.commandTimeoutMs ?? 2_000,
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          enableAutoPipelining: true,
          ...(options.connectionName ? { connectionName: options.connectionName } : {}),
        })
        // Logged once per outage, not once per reconnect attempt.
        redis.on("error", (error: Error) => {
          lastError = error
          if (started && connected) log(Effect.logWarning("redis connection lost", { error: error.message }))
          connected = false
        })
        redis.on("ready", () => {
          if (started && !connected) log(Effect.logInfo("redis reconnected"))
          connected = true
        })
        return redis
      }),
      (redis) =>
        redis.status === "ready"
          ? Effect.tryPromise(() => redis.quit()).pipe(
              Effect.timeout("2 seconds"),
              Effect.ignore,
              Effect.ensuring(Effect.sync(() => redis.disconnect())),
            )
          : Effect.sync(() => redis.disconnect()),
    )

    yield* Effect.tryPromise({
      try: () => redis.connect(),
      catch: (cause) => cause,
    }).pipe(
      Effect.timeout((options.connectTimeoutMs ?? 5_000) + 1_000),
      Effect.mapError(
        (cause) =>
          new CacheError({
            message: `Redis unreachable at ${where}: ${(lastError ?? asError(cause)).message}`,
            cause: lastError ?? cause,
          }),
      ),
    )
    started = true
    return redis
  })

const asError = (cause: unknown) => (cause instanceof Error ? cause : new Error(String(cause)))

// host:port of a Redis URL, without credentials.
const describeUrl = (url: string) => {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port || "6379"}`
  } catch {
    return "an unparsable REDIS_URL"
  }
}

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
