import { randomBytes } from "node:crypto"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { Redis } from "ioredis"
import { Health } from "./Health.ts"
import { type Limiter, RateLimit } from "./RateLimit.ts"
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
