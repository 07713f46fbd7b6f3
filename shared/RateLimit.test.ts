import { randomBytes } from "node:crypto"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { Redis } from "ioredis"
import { Health } from "./Health.ts"
import { type Limiter, RateLimit, RateLimitExceeded, type SyncedLimiter } from "./RateLimit.ts"
import { availabilityOf, RedisConnection } from "./Redis.ts"
import { faultProxy } from "./testing/faultProxy.ts"

// Real Redis (REDIS_URL from the global setup) and memory run the same behaviour suite.
const run = randomBytes(4).toString("hex")
const redisUrl = () => {
  const url = process.env.REDIS_URL
  if (!url) throw new Error("REDIS_URL is not set: run the tests through vitest (its global setup starts Redis)")
  return url
}

afterAll(async () => {
  const redis = new Redis(redisUrl())
  try {
    const keys = await redis.keys(`t-${run}-*`)
    if (keys.length > 0) await redis.del(...keys)
  } finally {
    await redis.quit()
  }
})

const redisLayer = (url: string) =>
  RateLimit.layerRedis.pipe(
    Layer.provideMerge(RedisConnection.layer({ url: Redacted.make(url), connectionName: `t-${run}` })),
    Layer.provideMerge(Health.layer),
  )

const implementations = [
  ["redis", redisLayer(redisUrl())],
  ["memory", RateLimit.layerMemory],
] as const

const limiterOf = (name: string, points: number, durationSeconds = 60) =>
  Effect.map(RateLimit, (limits) => limits.limiter({ keyPrefix: `t-${run}-${name}`, points, durationSeconds }))

const over = (limiter: Limiter, key: string) =>
  limiter.consume(key).pipe(
    Effect.as(false),
    Effect.catchTag("RateLimitExceeded", () => Effect.succeed(true)),
  )

for (const [name, implementation] of implementations) {
  layer(implementation, { excludeTestServices: true })(`RateLimit (${name})`, (it) => {
    it.effect("consume counts up to the limit, then refuses with the time left in the window; keys are apart", () =>
      Effect.gen(function* () {
        const limiter = yield* limiterOf(`${name}-consume`, 2)
        const first = yield* limiter.consume("a")
        assert.deepInclude(first, { consumed: 1, remaining: 1 })
        assert.isTrue(first.msBeforeNext > 58_000 && first.msBeforeNext <= 60_000, `msBeforeNext ${first.msBeforeNext}`)
        assert.deepInclude(yield* limiter.consume("a"), { consumed: 2, remaining: 0 })
        const refused = yield* Effect.flip(limiter.consume("a"))
        assert.strictEqual(refused._tag, "RateLimitExceeded")
        assert.isTrue(
          refused._tag === "RateLimitExceeded" && refused.msBeforeNext > 0 && refused.msBeforeNext <= 60_000,
        )
        assert.isFalse(yield* over(limiter, "b"))
      }),
    )

    it.effect("start sends the count at once; the wait answers it", () =>
      Effect.gen(function* () {
        const limiter = yield* limiterOf(`${name}-start`, 1)
        const [one, two] = [yield* limiter.start("k"), yield* limiter.start("k")]
        assert.deepInclude(yield* one, { consumed: 1 })
        assert.strictEqual((yield* Effect.flip(two))._tag, "RateLimitExceeded")
      }),
    )

    it.effect("the window starts with a key's first point and ends after its duration", () =>
      Effect.gen(function* () {
        const limiter = yield* limiterOf(`${name}-window`, 1, 1)
        yield* limiter.consume("k")
        assert.isTrue(yield* over(limiter, "k"))
        yield* Effect.sleep("1100 millis")
        assert.isFalse(yield* over(limiter, "k"))
      }),
    )

    it.effect("penalty counts without refusing; get reads the window; delete forgets it", () =>
      Effect.gen(function* () {
        const limiter = yield* limiterOf(`${name}-penalty`, 1, 3600)
        assert.deepStrictEqual(yield* limiter.get("k"), Option.none())
        for (let i = 1; i <= 3; i++) assert.strictEqual((yield* limiter.penalty("k")).consumed, i)
        const window = yield* limiter.get("k")
        assert.isTrue(Option.isSome(window) && window.value.consumed === 3 && window.value.msBeforeNext > 3_590_000)
        yield* limiter.delete("k")
        yield* limiter.delete("k")
        assert.deepStrictEqual(yield* limiter.get("k"), Option.none())
        assert.strictEqual((yield* limiter.penalty("k")).consumed, 1)
      }),
    )

    it.effect("block puts a key over its limit for the given seconds", () =>
      Effect.gen(function* () {
        const limiter = yield* limiterOf(`${name}-block`, 1, 60)
        yield* limiter.block("k", 1)
        const blocked = yield* limiter.get("k")
        assert.isTrue(Option.isSome(blocked) && blocked.value.msBeforeNext > 0 && blocked.value.msBeforeNext <= 1_000)
        assert.isTrue(yield* over(limiter, "k"))
        yield* Effect.sleep("1100 millis")
        assert.deepStrictEqual(yield* limiter.get("k"), Option.none())
      }),
    )
  })
}

layer(redisLayer(redisUrl()), { excludeTestServices: true })("RateLimit (redis only)", (it) => {
  it.effect("stores a key as <keyPrefix>:<key>, its window as the Redis key's TTL", () =>
    Effect.gen(function* () {
      const limiter = yield* limiterOf("raw", 5, 30)
      yield* limiter.consume("visible")
      yield* limiter.consume("visible")
      const raw = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(redisUrl())),
        (redis) => Effect.promise(() => redis.quit()),
      )
      assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-raw:visible`)), "2")
      const ttl = yield* Effect.promise(() => raw.pttl(`t-${run}-raw:visible`))
      assert.isTrue(ttl > 25_000 && ttl <= 30_000, `pttl ${ttl}`)
    }),
  )
})

describe("RateLimit during a Redis outage", () => {
  it.live("counts in this process's memory while Redis cannot answer, and in Redis again once it does", () =>
    Effect.gen(function* () {
      const target = new URL(redisUrl())
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => faultProxy({ host: target.hostname, port: Number(target.port) })),
        (proxy) => Effect.promise(() => proxy.close()),
      )
      const context = yield* Layer.build(redisLayer(proxy.via(redisUrl())))
      const limits = Context.get(context, RateLimit)
      const redis = Context.get(context, RedisConnection)
      const raw = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(redisUrl())),
        (redis) => Effect.promise(() => redis.quit()),
      )
      const limiter = limits.limiter({ keyPrefix: `t-${run}-outage`, points: 2, durationSeconds: 60 })

      yield* limiter.consume("before")
      assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-outage:before`)), "1")

      yield* Effect.promise(() => proxy.set("down"))
      // The first command finds Redis down (and counts in memory); the next ones skip it at once.
      yield* limiter.consume("during")
      assert.isFalse(availabilityOf(redis).up())
      yield* limiter.consume("during")
      assert.isTrue(yield* over(limiter, "during"))
      yield* limiter.delete("during")
      assert.isFalse(yield* over(limiter, "during"))
      assert.isNull(yield* Effect.promise(() => raw.get(`t-${run}-outage:during`)))

      yield* Effect.promise(() => proxy.set("pass"))
      yield* Effect.sleep("1500 millis")
      assert.isTrue(availabilityOf(redis).up())
      yield* limiter.consume("after")
      assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-outage:after`)), "1")
    }).pipe(Effect.scoped),
  )
})

// Two instances of a service: each its own RateLimit over its own connection, syncing every SYNC_MS.
const SYNC_MS = 50
const syncedLayer = (url: string, syncMs = SYNC_MS) =>
  RateLimit.layerRedisWith({ syncMs }).pipe(
    Layer.provideMerge(RedisConnection.layer({ url: Redacted.make(url), connectionName: `t-${run}` })),
    Layer.provideMerge(Health.layer),
  )
const instance = (url: string, syncMs?: number) =>
  Effect.map(Layer.build(syncedLayer(url, syncMs)), (context) => ({
    limits: Context.get(context, RateLimit),
    redis: Context.get(context, RedisConnection),
  }))
const rawRedis = Effect.acquireRelease(
  Effect.sync(() => new Redis(redisUrl())),
  (redis) => Effect.promise(() => redis.quit()),
)
const overSynced = (limiter: SyncedLimiter, key: string) =>
  limiter.consume(key).pipe(
    Effect.as(false),
    Effect.catchTag("RateLimitExceeded", () => Effect.succeed(true)),
  )

describe("RateLimit.synced", () => {
  it.live(
    "one instance decides at once and exactly; its points reach Redis within the sync interval, in the same key",
    () =>
      Effect.gen(function* () {
        const { limits } = yield* instance(redisUrl())
        const raw = yield* rawRedis
        const limiter = limits.synced({ keyPrefix: `t-${run}-synced-one`, points: 3, durationSeconds: 30 })
        const windows = [yield* limiter.consume("k"), yield* limiter.consume("k"), yield* limiter.consume("k")]
        assert.deepStrictEqual(
          windows.map((w) => [w.consumed, w.remaining]),
          [
            [1, 2],
            [2, 1],
            [3, 0],
          ],
        )
        assert.isTrue(windows[0]!.msBeforeNext > 29_000 && windows[0]!.msBeforeNext <= 30_000)
        const refused = yield* Effect.flip(limiter.consume("k"))
        assert.isTrue(refused._tag === "RateLimitExceeded" && refused.msBeforeNext > 29_000)
        // Nothing was sent on the request's path.
        assert.isNull(yield* Effect.promise(() => raw.get(`t-${run}-synced-one:k`)))
        yield* Effect.sleep(`${SYNC_MS * 3} millis`)
        // The refused point counts too, as the exact limiter's do; the window is the key's time to live.
        assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-synced-one:k`)), "4")
        const ttl = yield* Effect.promise(() => raw.pttl(`t-${run}-synced-one:k`))
        assert.isTrue(ttl > 25_000 && ttl <= 30_000, `pttl ${ttl}`)
      }).pipe(Effect.scoped),
  )

  it.live("instances learn each other's points at their next sync, and an exact limiter's of the same key", () =>
    Effect.gen(function* () {
      const a = (yield* instance(redisUrl())).limits
      const b = (yield* instance(redisUrl())).limits
      const options = { keyPrefix: `t-${run}-synced-two`, points: 5, durationSeconds: 60 }
      const [onA, onB, exact] = [a.synced(options), b.synced(options), a.limiter(options)]
      for (let i = 0; i < 3; i++) yield* onA.consume("k")
      yield* Effect.sleep(`${SYNC_MS * 3} millis`)
      // B has not asked Redis about the key yet: its first point is decided blind, then its sync brings A's three.
      assert.strictEqual((yield* onB.consume("k")).consumed, 1)
      yield* Effect.sleep(`${SYNC_MS * 3} millis`)
      assert.deepInclude(yield* onB.consume("k"), { consumed: 5, remaining: 0 })
      assert.isTrue(yield* overSynced(onB, "k"))
      yield* Effect.sleep(`${SYNC_MS * 3} millis`)
      // B's points (its refusal too) are in Redis now: an exact count of the same key meets them.
      assert.isTrue(yield* over(exact, "k"))
      // A still knows the 3 of its own last sync: this point is admitted (the bounded excess); its sync brings the rest.
      assert.deepInclude(yield* onA.consume("k"), { consumed: 4 })
      yield* Effect.sleep(`${SYNC_MS * 3} millis`)
      assert.isTrue(yield* overSynced(onA, "k"))
    }).pipe(Effect.scoped),
  )

  it.live(
    "countNow decides a synced point at once, in the same count as consume; an exact limit's it leaves alone",
    () =>
      Effect.gen(function* () {
        const { limits } = yield* instance(redisUrl())
        const raw = yield* rawRedis
        const options = { keyPrefix: `t-${run}-synced-now`, points: 2, durationSeconds: 30 }
        const limiter = limits.synced(options)
        assert.deepInclude(limiter.countNow("k"), { consumed: 1, remaining: 1 })
        assert.deepInclude(yield* limiter.consume("k"), { consumed: 2, remaining: 0 })
        const over = limiter.countNow("k")
        assert.isTrue(over instanceof RateLimitExceeded && over.msBeforeNext > 29_000)
        yield* Effect.sleep(`${SYNC_MS * 3} millis`)
        assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-synced-now:k`)), "3")
        // Exact: nothing decided or counted without Redis's answer.
        const exact = limits.limiter({ ...options, keyPrefix: `t-${run}-exact-now` })
        assert.isUndefined(exact.countNow("k"))
        assert.deepInclude(yield* exact.consume("k"), { consumed: 1 })
      }).pipe(Effect.scoped),
  )

  it.live("the last points are sent when the layer closes", () =>
    Effect.gen(function* () {
      const raw = yield* rawRedis
      yield* Effect.scoped(
        Effect.gen(function* () {
          // A sync interval longer than the test: only the close sends.
          const { limits } = yield* instance(redisUrl(), 60_000)
          const limiter = limits.synced({ keyPrefix: `t-${run}-synced-close`, points: 10, durationSeconds: 60 })
          yield* limiter.consume("k")
          yield* limiter.consume("k")
        }),
      )
      assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-synced-close:k`)), "2")
    }).pipe(Effect.scoped),
  )

  it.live("sync interval 0 counts exactly (every point in Redis at once)", () =>
    Effect.gen(function* () {
      const { limits } = yield* instance(redisUrl(), 0)
      const raw = yield* rawRedis
      const limiter = limits.synced({ keyPrefix: `t-${run}-synced-zero`, points: 10, durationSeconds: 60 })
      yield* limiter.consume("k")
      assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-synced-zero:k`)), "1")
    }).pipe(Effect.scoped),
  )

  it.live(
    "during a Redis outage counts on from the last shared count, sends nothing, and meets Redis again after",
    () =>
      Effect.gen(function* () {
        const target = new URL(redisUrl())
        const proxy = yield* Effect.acquireRelease(
          Effect.promise(() => faultProxy({ host: target.hostname, port: Number(target.port) })),
          (proxy) => Effect.promise(() => proxy.close()),
        )
        const { limits, redis } = yield* instance(proxy.via(redisUrl()))
        const other = (yield* instance(redisUrl())).limits
        const raw = yield* rawRedis
        const options = { keyPrefix: `t-${run}-synced-outage`, points: 4, durationSeconds: 60 }
        const limiter = limits.synced(options)

        yield* other.limiter(options).consume("k")
        yield* limiter.consume("k")
        yield* Effect.sleep(`${SYNC_MS * 3} millis`)
        assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-synced-outage:k`)), "2")

        yield* Effect.promise(() => proxy.set("down"))
        // The sync of this point finds Redis down: it stays this instance's, on top of the shared 2 it knew.
        assert.strictEqual((yield* limiter.consume("k")).consumed, 3)
        yield* Effect.sleep(`${SYNC_MS * 4} millis`)
        assert.isFalse(availabilityOf(redis).up())
        assert.strictEqual((yield* limiter.consume("k")).consumed, 4)
        assert.isTrue(yield* overSynced(limiter, "k"))
        yield* Effect.sleep(`${SYNC_MS * 3} millis`)
        assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-synced-outage:k`)), "2")

        yield* Effect.promise(() => proxy.set("pass"))
        yield* Effect.sleep("1500 millis")
        assert.isTrue(availabilityOf(redis).up())
        // Back: the next sync sends its new point and reads the shared count (the outage's points were this instance's).
        yield* limiter.consume("k").pipe(Effect.ignore)
        yield* Effect.sleep(`${SYNC_MS * 3} millis`)
        assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-synced-outage:k`)), "3")
        assert.deepInclude(yield* limiter.consume("k"), { consumed: 4 })
      }).pipe(Effect.scoped),
  )
})

layer(RateLimit.layerMemory, { excludeTestServices: true })("RateLimit.synced (memory)", (it) => {
  it.effect("without Redis counts exactly in memory", () =>
    Effect.gen(function* () {
      const limiter = (yield* RateLimit).synced({ keyPrefix: `t-${run}-synced-memory`, points: 1, durationSeconds: 60 })
      yield* limiter.consume("k")
      assert.isTrue(yield* overSynced(limiter, "k"))
    }),
  )
})
