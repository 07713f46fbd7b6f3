import { randomBytes } from "node:crypto"
import { afterAll, assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Deferred, Effect, Exit, Fiber, Layer, Option, Redacted, Ref } from "effect"
import { TestClock } from "effect/testing"
import { Redis } from "ioredis"
import { Cache, type CacheError, makeLocal, makeLocalStore } from "./Cache.ts"
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

    it.effect("take gets and deletes in one step: of 20 concurrent takes of a key exactly one gets it", () =>
      Effect.gen(function* () {
        const cache = yield* Cache
        yield* cache.set("once", "secret", { ttlSeconds: 60 })
        const taken = yield* Effect.all(
          Array.from({ length: 20 }, () => cache.take("once")),
          { concurrency: "unbounded" },
        )
        assert.deepStrictEqual(taken.filter(Option.isSome), [Option.some("secret")])
        assert.deepStrictEqual(yield* cache.get("once"), Option.none())
        assert.deepStrictEqual(yield* cache.take("never-set"), Option.none())
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
        const exit = yield* Effect.exit(cache.getOrSet("bad", 0, Effect.succeed("v")))
        assert.isTrue(Exit.hasDies(exit))
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

// The one in-memory cache (the kernel's LocalCache) on the TestClock: lookups counted, time moved by hand.
const counting = <A, E = never>(
  lookup: (key: string) => Effect.Effect<A, E>,
  options: { readonly capacity?: number; readonly expiresAt?: (value: A, key: string, askedAt: number) => number } = {},
) =>
  Effect.gen(function* () {
    const asked: Array<string> = []
    const cache = yield* makeLocal({
      capacity: options.capacity ?? 100,
      lookup: (key: string) =>
        Effect.andThen(
          Effect.sync(() => asked.push(key)),
          lookup(key),
        ),
      expiresAt: options.expiresAt ?? ((_value, _key, askedAt) => askedAt + 1_000),
    })
    return { cache, asked }
  })

describe("LocalCache", () => {
  it.live("refreshAhead: a key peeked in the last quarter of its life is asked again in the background", () =>
    Effect.gen(function* () {
      let version = 0
      const cache = yield* makeLocal({
        capacity: 10,
        // Every lookup after a key's first takes 30 ms.
        lookup: (key: string) =>
          Effect.as(Effect.sleep(version++ === 0 || key === "k" ? "0 millis" : "30 millis"), `${key} ${version}`),
        expiresAt: (_value, _key, askedAt) => askedAt + 200,
        refreshAhead: true,
      })
      assert.strictEqual(yield* cache.get("k"), "k 1")
      assert.strictEqual(cache.peekNow("k"), "k 1")
      yield* Effect.sleep("170 millis")
      // Last quarter: still the held answer, and a new lookup under way; its answer is kept with its own expiry.
      assert.strictEqual(cache.peekNow("k"), "k 1")
      yield* Effect.sleep("20 millis")
      assert.strictEqual(cache.peekNow("k"), "k 2")
      yield* Effect.sleep("100 millis")
      assert.strictEqual(cache.peekNow("k"), "k 2")
      // An invalidation while the background lookup runs: its answer is not kept.
      assert.strictEqual(yield* cache.get("gated"), "gated 3")
      yield* Effect.sleep("135 millis")
      assert.strictEqual(cache.peekNow("gated"), "gated 3")
      yield* cache.invalidateAll
      yield* Effect.sleep("60 millis")
      assert.isUndefined(cache.peekNow("gated"))
      assert.strictEqual(version, 4)
    }),
  )

  it.live("peekNow answers what is held, outside a fiber: nothing while looked up, expired or invalidated", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const cache = yield* makeLocal({
        capacity: 2,
        lookup: (key: string) => Effect.as(Deferred.await(gate), `value of ${key}`),
        expiresAt: (_value, key, askedAt) => askedAt + (key === "brief" ? 50 : 60_000),
      })
      assert.isUndefined(cache.peekNow("a"))
      const waiting = yield* Effect.forkChild(Effect.all([cache.get("a"), cache.get("brief")]))
      yield* Effect.yieldNow
      assert.isUndefined(cache.peekNow("a"))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(waiting)
      assert.strictEqual(cache.peekNow("a"), "value of a")
      assert.strictEqual(cache.peekNow("brief"), "value of brief")
      yield* Effect.sleep("80 millis")
      assert.isUndefined(cache.peekNow("brief"))
      // A peek is a read: "a" read last, a new key evicts the other one held.
      assert.strictEqual(cache.peekNow("a"), "value of a")
      yield* cache.set("b", "value of b", Date.now() + 60_000)
      assert.strictEqual(cache.peekNow("a"), "value of a")
      yield* cache.set("c", "value of c", Date.now() + 60_000)
      assert.strictEqual(cache.peekNow("a"), "value of a")
      assert.isUndefined(cache.peekNow("b"))
      yield* cache.invalidateAll
      assert.isUndefined(cache.peekNow("a"))
    }),
  )

  it.effect("single flight: 100 concurrent gets of a missing key make one lookup and all get its value", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const { cache, asked } = yield* counting((key) => Effect.as(Deferred.await(gate), `value of ${key}`))
      const waiting = yield* Effect.forkChild(
        Effect.all(
          Array.from({ length: 100 }, (_, i) => cache.get(i % 2 === 0 ? "even" : "odd")),
          { concurrency: "unbounded" },
        ),
      )
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      const values = yield* Fiber.join(waiting)
      assert.deepStrictEqual(new Set(values), new Set(["value of even", "value of odd"]))
      assert.deepStrictEqual([...asked].sort(), ["even", "odd"])
      yield* cache.get("even")
      assert.strictEqual(asked.length, 2)
    }),
  )

  it.effect("a failed lookup reaches every caller waiting for it and is not kept", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const { cache, asked } = yield* counting(() => Effect.andThen(Deferred.await(gate), Effect.fail("down" as const)))
      const waiting = yield* Effect.forkChild(
        Effect.all(
          Array.from({ length: 10 }, () => Effect.flip(cache.get("k"))),
          { concurrency: "unbounded" },
        ),
      )
      yield* Effect.yieldNow
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(
        yield* Fiber.join(waiting),
        Array.from({ length: 10 }, () => "down"),
      )
      assert.strictEqual(asked.length, 1)
      assert.strictEqual(yield* Effect.flip(cache.get("k")), "down")
      assert.strictEqual(asked.length, 2)
    }),
  )

  it.effect("a caller that stops waiting does not stop the lookup for the others", () =>
    Effect.gen(function* () {
      const { cache, asked } = yield* counting((key) => Effect.as(Effect.sleep("100 millis"), key))
      const first = yield* Effect.forkChild(cache.get("k"))
      const second = yield* Effect.forkChild(cache.get("k"))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(first)
      yield* TestClock.adjust("100 millis")
      assert.strictEqual(yield* Fiber.join(second), "k")
      assert.strictEqual(asked.length, 1)
    }),
  )

  it.effect("an entry expires at its expiresAt, counted from when its lookup was asked", () =>
    Effect.gen(function* () {
      // The lookup takes 200 ms: a 500 ms lifetime from the ask leaves 300 ms after the answer.
      const { cache, asked } = yield* counting((key) => Effect.as(Effect.sleep("200 millis"), key), {
        expiresAt: (_value, _key, askedAt) => askedAt + 500,
      })
      const looking = yield* Effect.forkChild(cache.get("k"))
      yield* TestClock.adjust("200 millis")
      yield* Fiber.join(looking)
      yield* TestClock.adjust("299 millis")
      yield* cache.get("k")
      assert.strictEqual(asked.length, 1)
      yield* TestClock.adjust("1 millis")
      const again = yield* Effect.forkChild(cache.get("k"))
      yield* TestClock.adjust("200 millis")
      yield* Fiber.join(again)
      assert.strictEqual(asked.length, 2)
    }),
  )

  it.effect("an expiry from the value itself (a token's exp); one not after now answers but keeps nothing", () =>
    Effect.gen(function* () {
      const { cache, asked } = yield* counting((key) => Effect.succeed(Number(key)), {
        expiresAt: (until) => until,
      })
      yield* cache.get("60000")
      yield* TestClock.adjust("59 seconds")
      yield* cache.get("60000")
      assert.strictEqual(asked.length, 1)
      yield* TestClock.adjust("1 second")
      yield* cache.get("60000")
      assert.strictEqual(asked.length, 2)
      assert.strictEqual(yield* cache.get("0"), 0)
      assert.strictEqual(yield* cache.get("0"), 0)
      assert.strictEqual(asked.length, 4)
      assert.isTrue(Option.isNone(yield* cache.peek("0")))
    }),
  )

  it.effect("holds at most capacity entries, evicting the least recently used (read or written) first", () =>
    Effect.gen(function* () {
      const { cache, asked } = yield* counting((key) => Effect.succeed(key), { capacity: 3 })
      yield* Effect.forEach(["a", "b", "c"], cache.get)
      yield* cache.get("a")
      yield* cache.set("b", "b again", Number.POSITIVE_INFINITY)
      yield* cache.get("d")
      const held = yield* Effect.forEach(["a", "b", "c", "d"], (key) => Effect.map(cache.peek(key), Option.isSome))
      assert.deepStrictEqual(held, [true, true, false, true])
      assert.deepStrictEqual(asked, ["a", "b", "c", "d"])
    }),
  )

  it.effect("invalidate drops a key, invalidateAll every key; a lookup in flight answers but is not kept", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      let version = 0
      const { cache, asked } = yield* counting((key) =>
        key === "slow" ? Effect.as(Deferred.await(gate), `slow ${++version}`) : Effect.succeed(key),
      )
      yield* cache.get("a")
      yield* cache.get("b")
      yield* cache.invalidate("a")
      yield* cache.get("a")
      yield* cache.get("b")
      assert.deepStrictEqual(asked, ["a", "b", "a"])
      const before = yield* Effect.forkChild(cache.get("slow"))
      yield* Effect.yieldNow
      yield* cache.invalidateAll
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(before), "slow 1")
      assert.strictEqual(yield* cache.get("slow"), "slow 2")
      yield* cache.get("b")
      assert.deepStrictEqual(asked, ["a", "b", "a", "slow", "slow", "b"])
    }),
  )

  it.effect("a lookup runs under the span of the caller that started it", () =>
    Effect.gen(function* () {
      const { cache } = yield* counting(() => Effect.map(Effect.currentParentSpan, (span) => span.spanId))
      const [caller, seen] = yield* Effect.flatMap(Effect.currentSpan, (span) =>
        Effect.map(cache.get("k"), (seen) => [span.spanId, seen] as const),
      ).pipe(Effect.withSpan("caller"))
      assert.strictEqual(seen, caller)
    }),
  )

  it.effect("a store holds what is set until its time; a time not after now drops the key", () =>
    Effect.gen(function* () {
      const store = yield* makeLocalStore<string, string>(10)
      yield* store.set("k", "v", 1_000)
      const held = Option.getOrThrow(yield* store.peek("k"))
      assert.deepStrictEqual([held.value, held.expiresAt], ["v", 1_000])
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isSome(yield* store.peek("k")))
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Option.isNone(yield* store.peek("k")))
      yield* store.set("k", "v", Number.POSITIVE_INFINITY)
      yield* store.set("k", "gone", 0)
      assert.isTrue(Option.isNone(yield* store.peek("k")))
    }),
  )
})
