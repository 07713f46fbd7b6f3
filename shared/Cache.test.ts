import { randomBytes } from "node:crypto"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Fiber, Layer, Option, Redacted, Ref } from "effect"
import { Redis } from "ioredis"
import { Cache, type CacheError } from "./Cache.ts"
import { Health } from "./Health.ts"
import { RedisConnection } from "./Redis.ts"

// Real Redis (REDIS_URL from the global setup) and the in-process cache run the same behaviour suite.
const run = randomBytes(4).toString("hex")
const redisUrl = () => {
  const url = process.env.REDIS_URL
  if (!url) throw new Error("REDIS_URL is not set: run the tests through vitest (its global setup starts Redis)")
  return Redacted.make(url)
}

afterAll(async () => {
  const redis = new Redis(Redacted.value(redisUrl()))
  try {
    const keys = await redis.keys(`t-${run}-*`)
    if (keys.length > 0) await redis.del(...keys)
  } finally {
    await redis.quit()
  }
})

type MakeLayer = (prefix: string) => Layer.Layer<Cache, CacheError, Health>

const implementations: ReadonlyArray<readonly [string, MakeLayer]> = [
  ["redis", (prefix) => Cache.layerRedis({ url: redisUrl(), prefix })],
  ["memory", (prefix) => Cache.layerMemory({ prefix })],
]

const withHealth = <E>(cache: Layer.Layer<Cache, E, Health>) => cache.pipe(Layer.provideMerge(Health.layer))

for (const [name, makeLayer] of implementations) {
  const prefix = `t-${run}-${name}`
  layer(withHealth(makeLayer(prefix)), { excludeTestServices: true })(`Cache (${name})`, (it) => {
    it.effect("set then get returns the value; a missing key is none", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        yield* cache.set("greeting", JSON.stringify({ hello: "world" }))
        assert.deepStrictEqual(yield* cache.get("greeting"), Option.some('{"hello":"world"}'))
        assert.deepStrictEqual(yield* cache.get("never-set"), Option.none())
      }),
    )

    it.effect("set overwrites and delete removes (deleting a missing key is fine)", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        yield* cache.set("k", "1")
        yield* cache.set("k", "2")
        assert.deepStrictEqual(yield* cache.get("k"), Option.some("2"))
        yield* cache.delete("k")
        yield* cache.delete("k")
        assert.deepStrictEqual(yield* cache.get("k"), Option.none())
      }),
    )

    it.effect("an entry expires after its TTL; one without TTL stays", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        yield* cache.set("short", "v", { ttlSeconds: 0.2 })
        yield* cache.set("forever", "v")
        assert.deepStrictEqual(yield* cache.get("short"), Option.some("v"))
        yield* Effect.sleep("400 millis")
        assert.deepStrictEqual(yield* cache.get("short"), Option.none())
        assert.deepStrictEqual(yield* cache.get("forever"), Option.some("v"))
      }),
    )

    it.effect("a non-positive TTL is a CacheError (a defect in getOrSet)", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        const error = yield* Effect.flip(cache.set("bad", "v", { ttlSeconds: 0 }))
        assert.strictEqual(error._tag, "CacheError")
        assert.match(error.message, /ttlSeconds/)
        assert.strictEqual((yield* Effect.flip(cache.increment("bad", -1)))._tag, "CacheError")
        const exit = yield* Effect.exit(cache.getOrSet("bad", 0, Effect.succeed("v")))
        assert.isTrue(Exit.hasDies(exit))
      }),
    )

    it.effect("setIfAbsent: of 50 concurrent callers exactly one gets the lease; it frees with its TTL", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        const won = yield* Effect.forEach(
          Array.from({ length: 50 }),
          () => cache.setIfAbsent("lease", "1", { ttlSeconds: 0.3 }),
          { concurrency: "unbounded" },
        )
        assert.strictEqual(won.filter(Boolean).length, 1)
        yield* Effect.sleep("400 millis")
        assert.isTrue(yield* cache.setIfAbsent("lease", "2", { ttlSeconds: 10 }))
      }),
    )

    it.effect("200 concurrent increments count to 200", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        const counts = yield* Effect.forEach(Array.from({ length: 200 }), () => cache.increment("hits", 60), {
          concurrency: "unbounded",
        })
        assert.deepStrictEqual(
          [...counts].sort((a, b) => a - b),
          Array.from({ length: 200 }, (_, i) => i + 1),
        )
        assert.deepStrictEqual(yield* cache.get("hits"), Option.some("200"))
      }),
    )

    it.effect("an increment window starts at the first increment and expires with its TTL", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        assert.strictEqual(yield* cache.increment("window", 0.3), 1)
        yield* Effect.sleep("150 millis")
        assert.strictEqual(yield* cache.increment("window", 0.3), 2)
        yield* Effect.sleep("300 millis")
        assert.strictEqual(yield* cache.increment("window", 0.3), 1)
      }),
    )

    it.effect("incrementing a non-integer value is a CacheError", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        yield* cache.set("text", "abc")
        assert.strictEqual((yield* Effect.flip(cache.increment("text", 10)))._tag, "CacheError")
      }),
    )

    it.effect("prefixes isolate services sharing the backend", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        const other = yield* Layer.build(withHealth(makeLayer(`${prefix}-other`))).pipe(Effect.map(Context.get(Cache)))
        yield* cache.set("shared-name", "mine")
        assert.deepStrictEqual(yield* other.get("shared-name"), Option.none())
        yield* other.set("shared-name", "theirs")
        assert.deepStrictEqual(yield* cache.get("shared-name"), Option.some("mine"))
        assert.strictEqual(yield* other.increment("shared-counter", 10), 1)
        assert.strictEqual(yield* cache.increment("shared-counter", 10), 1)
      }),
    )

    it.effect("getOrSet computes once for concurrent callers, then serves the cached value", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        const calls = yield* Ref.make(0)
        const compute = Ref.updateAndGet(calls, (n) => n + 1).pipe(
          Effect.delay("50 millis"),
          Effect.map((n) => `computed-${n}`),
        )
        const values = yield* Effect.forEach(Array.from({ length: 20 }), () => cache.getOrSet("lazy", 60, compute), {
          concurrency: "unbounded",
        })
        assert.deepStrictEqual(new Set(values), new Set(["computed-1"]))
        assert.strictEqual(yield* cache.getOrSet("lazy", 60, compute), "computed-1")
        assert.strictEqual(yield* Ref.get(calls), 1)
        assert.deepStrictEqual(yield* cache.get("lazy"), Option.some("computed-1"))
      }),
    )

    it.effect("getOrSet passes a failure of compute to every caller and caches nothing", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        const failing = Effect.fail("upstream down" as const).pipe(Effect.delay("20 millis"))
        const errors = yield* Effect.forEach(
          Array.from({ length: 5 }),
          () => Effect.flip(cache.getOrSet("failing", 60, failing)),
          { concurrency: "unbounded" },
        )
        assert.deepStrictEqual(
          errors,
          Array.from({ length: 5 }, () => "upstream down"),
        )
        assert.deepStrictEqual(yield* cache.get("failing"), Option.none())
        assert.strictEqual(yield* cache.getOrSet("failing", 60, Effect.succeed("recovered")), "recovered")
      }),
    )

    it.effect("getOrSet keeps computing for the others when the first caller is interrupted", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        const slow = Effect.succeed("slow-value").pipe(Effect.delay("100 millis"))
        const first = yield* Effect.forkChild(cache.getOrSet("slow", 60, slow))
        yield* Effect.sleep("10 millis")
        const second = yield* Effect.forkChild(cache.getOrSet("slow", 60, Effect.die("must not run")))
        yield* Fiber.interrupt(first)
        assert.strictEqual(yield* Fiber.join(second), "slow-value")
      }),
    )
  })
}

layer(withHealth(Cache.layerRedis({ url: redisUrl(), prefix: `t-${run}-raw` })), { excludeTestServices: true })(
  "Cache (redis only)",
  (it) => {
    it.effect("stores keys as <prefix>:<key> with the TTL on the Redis key", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        yield* cache.set("visible", "v", { ttlSeconds: 30 })
        const raw = yield* Effect.acquireRelease(
          Effect.sync(() => new Redis(Redacted.value(redisUrl()))),
          (redis) => Effect.promise(() => redis.quit()),
        )
        assert.strictEqual(yield* Effect.promise(() => raw.get(`t-${run}-raw:visible`)), "v")
        const ttl = yield* Effect.promise(() => raw.pttl(`t-${run}-raw:visible`))
        assert.isTrue(ttl > 25_000 && ttl <= 30_000, `pttl ${ttl}`)
      }),
    )

    it.effect("registers a passing 'redis' readiness check", () =>
      Effect.gen(function* () {
        const readiness = yield* (yield* Health).readiness
        assert.deepStrictEqual(readiness, { ok: true, checks: { redis: "ok" } })
      }),
    )
  },
)

layer(Cache.layerMemory({ prefix: "lru", maxEntries: 3 }), { excludeTestServices: true })(
  "Cache (memory only)",
  (it) => {
    it.effect("holds at most maxEntries, evicting the least recently used first", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        yield* cache.set("a", "1")
        yield* cache.set("b", "2")
        yield* cache.set("c", "3")
        yield* cache.get("a")
        yield* cache.set("d", "4")
        const present = yield* Effect.forEach(["a", "b", "c", "d"], (key) => Effect.map(cache.get(key), Option.isSome))
        assert.deepStrictEqual(present, [true, false, true, true])
      }),
    )
  },
)

describe("Cache.layerRedis lifecycle", () => {
  it.live("fails fast with a CacheError naming host and port when Redis is unreachable", () =>
    Effect.gen(function* () {
      const started = Date.now()
      const error = yield* Effect.flip(
        Layer.build(
          withHealth(
            Cache.layerRedis({ url: Redacted.make("redis://:secret@127.0.0.1:1"), prefix: "t", connectTimeoutMs: 500 }),
          ),
        ),
      )
      assert.strictEqual(error._tag, "CacheError")
      assert.match(error.message, /^Redis unreachable at 127\.0\.0\.1:1: .*ECONNREFUSED/)
      assert.notInclude(error.message, "secret")
      assert.isBelow(Date.now() - started, 3_000)
    }),
  )

  it.live("closes its connection when the layer's scope closes", () =>
    Effect.gen(function* () {
      const name = `t-${run}-close`
      const raw = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(Redacted.value(redisUrl()))),
        (redis) => Effect.promise(() => redis.quit()),
      )
      const clients = Effect.promise(() => raw.client("LIST") as Promise<string>).pipe(
        Effect.map((list) => list.split("\n").filter((line) => line.includes(` name=${name} `)).length),
      )
      yield* Effect.scoped(
        Effect.gen(function* () {
          yield* Layer.build(withHealth(Cache.layerRedis({ url: redisUrl(), prefix: name })))
          assert.strictEqual(yield* clients, 1)
        }),
      )
      yield* Effect.sleep("50 millis")
      assert.strictEqual(yield* clients, 0)
    }),
  )

  it.live("caches over one RedisConnection value share its one connection", () =>
    Effect.gen(function* () {
      const name = `t-${run}-shared`
      const raw = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(Redacted.value(redisUrl()))),
        (redis) => Effect.promise(() => redis.quit()),
      )
      const clients = Effect.promise(() => raw.client("LIST") as Promise<string>).pipe(
        Effect.map((list) => list.split("\n").filter((line) => line.includes(` name=${name} `)).length),
      )
      // As Cache.layer does with RedisConnection.fromEnvironment: one layer value, provided to every cache.
      const connection = RedisConnection.layer({ url: redisUrl(), connectionName: name })
      const cacheOf = (prefix: string) => Cache.layerOn(`${name}-${prefix}`).pipe(Layer.provide(connection))
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(withHealth(Layer.mergeAll(cacheOf("a"), cacheOf("b"), cacheOf("c"))))
          yield* Context.get(context, Cache).set("k", "v")
          assert.strictEqual(yield* clients, 1)
        }),
      )
    }),
  )

  it.live("REDIS_KEY_PREFIX keeps two platforms on one Redis apart", () =>
    Effect.gen(function* () {
      const platformCache = (keyPrefix: string) =>
        Effect.map(
          Layer.build(
            withHealth(
              Cache.layer({ prefix: `t-${run}-env` }).pipe(
                Layer.provide(
                  ConfigProvider.layer(
                    ConfigProvider.fromEnv({
                      env: { REDIS_URL: Redacted.value(redisUrl()), REDIS_KEY_PREFIX: keyPrefix },
                    }),
                  ),
                ),
              ),
            ),
          ),
          (context) => Context.get(context, Cache),
        )
      const one = yield* platformCache(`p1-${run}:`)
      const two = yield* platformCache(`p2-${run}:`)
      yield* one.set("k", "one's")
      assert.deepStrictEqual(yield* one.get("k"), Option.some("one's"))
      assert.deepStrictEqual(yield* two.get("k"), Option.none())
      const raw = yield* Effect.acquireRelease(
        Effect.sync(() => new Redis(Redacted.value(redisUrl()))),
        (redis) => Effect.promise(() => redis.quit()),
      )
      assert.strictEqual(yield* Effect.promise(() => raw.get(`p1-${run}:t-${run}-env:k`)), "one's")
    }).pipe(Effect.scoped),
  )

  it.live("Cache.layer picks Redis when REDIS_URL is set and memory otherwise", () =>
    Effect.gen(function* () {
      const checks = (env: Record<string, string>) =>
        Effect.gen(function* () {
          const readiness = yield* (yield* Health).readiness
          return Object.keys(readiness.checks)
        }).pipe(
          Effect.provide(
            withHealth(Cache.layer({ prefix: `t-${run}-pick` })).pipe(
              Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))),
            ),
          ),
        )
      assert.deepStrictEqual(yield* checks({ REDIS_URL: Redacted.value(redisUrl()) }), ["redis"])
      assert.deepStrictEqual(yield* checks({}), [])
      assert.deepStrictEqual(yield* checks({ REDIS_URL: "" }), [])
    }),
  )
})
