import { Config, Context, Effect, Layer, Metric, Redacted, Schema, type Scope } from "effect"
import type { Redis } from "ioredis"
import { type Health, register } from "./Health.ts"

/** Redis could not be reached when the connection was made (host and port named, credentials never). */
export class RedisError extends Schema.TaggedError<RedisError>()("RedisError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** Settings of a connection to Redis. */
export interface RedisOptions {
  readonly url: Redacted.Redacted<string>
  /** Bound on the connection attempt at start and on each reconnect; default 5 s. */
  readonly connectTimeoutMs?: number
  /** Bound on each command; default 500 ms (a Redis command takes well under a millisecond). */
  readonly commandTimeoutMs?: number
  /**
   * Put before every key this connection touches (`REDIS_KEY_PREFIX`), so that several platforms (environments, test
   * runs) can share one Redis without sharing revocations, rate-limit counters or caches. Default: none.
   */
  readonly keyPrefix?: string
  /** The client name Redis lists the connection under (CLIENT LIST). */
  readonly connectionName?: string
}

/**
 * A process's connection to Redis, for the caches and anything else that needs the raw client (the gateway's rate
 * limiter). Connected (and checked) at start, "redis" readiness check (PING, non-critical: the platform serves
 * degraded without Redis), closed with the layer; commands issued in one event-loop turn go out in one write
 * (auto-pipelining) and fail at once while disconnected (no offline queue: a cache or limiter degrades instead of
 * waiting). Reconnects every second at most while Redis is away; `availabilityOf` tells whether it answers.
 */
export class RedisConnection extends Context.Service<RedisConnection, Redis>()("shared/RedisConnection") {
  static readonly layer = (options: RedisOptions) =>
    Layer.effect(
      RedisConnection,
      Effect.gen(function* () {
        const redis = yield* connect(options)
        yield* register(
          "redis",
          Effect.tryPromise(() => redis.ping()),
          { critical: false },
        )
        return redis
      }),
    )

  /**
   * The connection to `REDIS_URL` (required here). One value: the caches and services of an application that all use
   * it share one connection, as layers are built once per application.
   */
  static readonly fromEnvironment: Layer.Layer<RedisConnection, RedisError | Config.ConfigError, Health> = Layer.unwrap(
    Effect.map(
      Config.all({
        url: Config.Redacted("REDIS_URL"),
        keyPrefix: Config.String("REDIS_KEY_PREFIX").pipe(Config.withDefault("")),
      }),
      ({ url, keyPrefix }) => RedisConnection.layer({ url, keyPrefix, connectionName: "platform" }),
    ),
  )
}

/**
 * What a process knows of its Redis: up until a command fails (an error, or no answer within the command timeout),
 * then down, and every user skips Redis at once, until a PING (every `PROBE_MS`) answers again. A hung Redis thus
 * costs one command timeout per process, not one per request; each transition is logged once and counted in
 * `redis_unavailable_total`, and `redis_available` (1/0) holds the current state.
 */
export interface RedisAvailability {
  readonly up: () => boolean
  /** A command to Redis failed: Redis counts as down until a probe answers. */
  readonly failed: (cause: unknown) => void
}

const alwaysUp: RedisAvailability = { up: () => true, failed: () => {} }
const availabilities = new WeakMap<Redis, RedisAvailability>()

/** The availability of a client made by `RedisConnection` (always up for any other client). */
export const availabilityOf = (redis: Redis): RedisAvailability => availabilities.get(redis) ?? alwaysUp

/** How often a down Redis is probed (PING), so users return to it within about this long after it answers. */
export const PROBE_MS = 500

// An error reply (a wrong type, a script error) comes from a Redis that answers: it says nothing of availability.
/** True for an error reply from a Redis that is answering (a script error, a wrong type): not an outage. */
export const isReply = (cause: unknown) => cause instanceof Error && cause.name === "ReplyError"

const unavailableCount = Metric.counter("redis_unavailable_total", {
  description: "Times this process found Redis unavailable and served degraded",
  incremental: true,
})
const availableGauge = Metric.gauge("redis_available", { description: "1 while Redis answers this process, else 0" })

const connect = (options: RedisOptions): Effect.Effect<Redis, RedisError, Scope.Scope> =>
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

    const redis = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const redis = new Redis(url, {
          lazyConnect: true,
          connectTimeout: options.connectTimeoutMs ?? 5_000,
          commandTimeout: options.commandTimeoutMs ?? 500,
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          enableAutoPipelining: true,
          // Reconnect attempts 100 ms apart, growing to one a second: back within about a second of Redis's return.
          retryStrategy: (times: number) => Math.min(times * 100, 1_000),
          ...(options.connectionName ? { connectionName: options.connectionName } : {}),
          ...(options.keyPrefix ? { keyPrefix: options.keyPrefix } : {}),
        })
        // An outage is logged and counted once, by the availability (with the error that began it), not once per
        // reconnect attempt; its return is logged when a PING is answered again.
        redis.on("error", (error: Error) => {
          lastError = error
          if (started) availability.failed(error)
        })
        redis.on("close", () => {
          if (started) availability.failed(new Error("connection closed"))
        })
        const availability = watch(redis, log)
        availabilities.set(redis, availability)
        return redis
      }),
      (redis) =>
        Effect.sync(() => availabilities.get(redis)?.failed(closing)).pipe(
          Effect.andThen(
            redis.status === "ready"
              ? Effect.tryPromise(() => redis.quit()).pipe(
                  Effect.timeout("2 seconds"),
                  Effect.ignore,
                  Effect.ensuring(Effect.sync(() => redis.disconnect())),
                )
              : Effect.sync(() => redis.disconnect()),
          ),
        ),
    )

    yield* Effect.tryPromise({
      try: () => redis.connect(),
      catch: (cause) => cause,
    }).pipe(
      Effect.timeout((options.connectTimeoutMs ?? 5_000) + 1_000),
      Effect.mapError(
        (cause) =>
          new RedisError({
            message: `Redis unreachable at ${where}: ${(lastError ?? asError(cause)).message}`,
            cause: lastError ?? cause,
          }),
      ),
    )
    started = true
    return redis
  })

const closing = Symbol("closing")

// The availability of one client: marks it down on a failure, then PINGs every PROBE_MS until it answers.
const watch = (redis: Redis, log: (effect: Effect.Effect<void>) => void): RedisAvailability => {
  let up = true
  let stopped = false
  let probe: ReturnType<typeof setInterval> | undefined
  let asking = false
  log(Metric.update(availableGauge, 1))
  const recovered = () => {
    clearInterval(probe)
    probe = undefined
    if (stopped) return
    up = true
    log(Effect.andThen(Metric.update(availableGauge, 1), Effect.logInfo("redis answers again: using it again")))
  }
  return {
    up: () => up,
    failed: (cause) => {
      if (cause === closing) {
        stopped = true
        clearInterval(probe)
        return
      }
      if (!up || stopped) return
      up = false
      log(
        Effect.logWarning("redis unavailable: serving degraded until it answers again", {
          error: cause instanceof Error ? cause.message : String(cause),
        }).pipe(Effect.andThen(Metric.update(unavailableCount, 1)), Effect.andThen(Metric.update(availableGauge, 0))),
      )
      probe = setInterval(() => {
        // While disconnected ioredis reconnects on its own; a PING then says whether commands are answered.
        if (asking || redis.status !== "ready") return
        asking = true
        redis
          .ping()
          .then(recovered, () => {})
          .finally(() => {
            asking = false
          })
      }, PROBE_MS)
      probe.unref()
    },
  }
}

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
