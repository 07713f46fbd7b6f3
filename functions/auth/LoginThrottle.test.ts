import { createHash, randomBytes } from "node:crypto"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Deferred, Effect, Fiber, Layer } from "effect"
import { Redis } from "ioredis"
import { Health } from "../../shared/Health.ts"
import { availabilityOf, RedisConnection } from "../../shared/Redis.ts"
import { faultProxy } from "../../shared/testing/faultProxy.ts"
import { LoginThrottle, type LoginThrottleOptions } from "./LoginThrottle.ts"

// The throttle over the real Redis (REDIS_URL from the global setup), each test run under its own REDIS_KEY_PREFIX,
// and behind a fault proxy for the outage.
const run = `t-${randomBytes(4).toString("hex")}:`
const redisUrl = () => {
  const url = process.env.REDIS_URL
  if (!url) throw new Error("REDIS_URL is not set: run the tests through vitest (its global setup starts Redis)")
  return url
}
const options: LoginThrottleOptions = { freeAttempts: 1, maxDelaySeconds: 900, ipLimitPerMinute: 2 }

afterAll(async () => {
  const redis = new Redis(redisUrl())
  try {
    const keys = await redis.keys(`${run}*`)
    if (keys.length > 0) await redis.del(...keys)
  } finally {
    await redis.quit()
  }
})

// The throttle as auth builds it: Redis chosen by REDIS_URL, the connection shared through RedisConnection.
const throttleOn = (url: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      Layer.merge(LoginThrottle.layer(options), RedisConnection.fromEnvironment).pipe(
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { REDIS_URL: url, REDIS_KEY_PREFIX: run } }))),
        Layer.provide(Health.layer),
      ),
    )
    return { throttle: Context.get(context, LoginThrottle), redis: Context.get(context, RedisConnection) }
  })

const raw = Effect.acquireRelease(
  Effect.sync(() => new Redis(redisUrl())),
  (redis) => Effect.promise(() => redis.quit()),
)
const hashOf = (email: string) => createHash("sha256").update(email.trim().toLowerCase()).digest("base64url")
const wrong = Effect.succeed({ ok: false, value: "wrong" })
const right = Effect.succeed({ ok: true, value: "right" })
// Clear of a minute's end, so that a test's attempts from one address fall in one clock minute.
const midMinute = Effect.suspend(() =>
  Date.now() % 60_000 > 55_000 ? Effect.sleep(60_000 - (Date.now() % 60_000) + 100) : Effect.void,
)

describe("LoginThrottle over Redis", () => {
  it.live("an address gets its limit per clock minute, counted under auth-login:ip:<ip>:<minute>", () =>
    Effect.gen(function* () {
      const { throttle } = yield* throttleOn(redisUrl())
      const redis = yield* raw
      yield* midMinute
      yield* throttle.admitAddress("10.1.0.1")
      yield* throttle.admitAddress("10.1.0.1")
      const refused = yield* Effect.flip(throttle.admitAddress("10.1.0.1"))
      const minute = Math.floor(Date.now() / 60_000)
      assert.strictEqual(refused.limit, 2)
      const untilMinuteEnds = Math.ceil(((minute + 1) * 60_000 - Date.now()) / 1000)
      assert.isTrue(Math.abs(refused.retryAfter - untilMinuteEnds) <= 1, `retryAfter ${refused.retryAfter}`)
      assert.strictEqual(yield* Effect.promise(() => redis.get(`${run}auth-login:ip:10.1.0.1:${minute}`)), "3")
      // Another address, and no address at all, are not limited.
      yield* throttle.admitAddress("10.1.0.2")
      for (let i = 0; i < 3; i++) yield* throttle.admitAddress(null)
    }).pipe(Effect.scoped),
  )

  it.live("failures delay the account under auth-login:fail and :wait; a success clears them; the lease is freed", () =>
    Effect.gen(function* () {
      const { throttle } = yield* throttleOn(redisUrl())
      const redis = yield* raw
      const email = `Delay-${run}@Example.com`
      const key = hashOf(email)
      assert.deepStrictEqual(yield* throttle.guard(email, wrong), { value: "wrong", delaySeconds: 1 })
      assert.strictEqual(yield* Effect.promise(() => redis.get(`${run}auth-login:fail:${key}`)), "1")
      const wait = yield* Effect.promise(() => redis.pttl(`${run}auth-login:wait:${key}`))
      assert.isTrue(wait > 0 && wait <= 1_000, `wait pttl ${wait}`)
      assert.strictEqual(yield* Effect.promise(() => redis.exists(`${run}auth-login:lease:${key}`)), 0)
      const refused = yield* Effect.flip(throttle.guard(email.toLowerCase(), right))
      assert.strictEqual(refused._tag, "TooManyRequests")
      assert.strictEqual(refused._tag === "TooManyRequests" && refused.retryAfter, 1)
      yield* Effect.sleep("1100 millis")
      assert.deepStrictEqual(yield* throttle.guard(email, right), { value: "right", delaySeconds: 0 })
      assert.strictEqual(yield* Effect.promise(() => redis.exists(`${run}auth-login:fail:${key}`)), 0)
    }).pipe(Effect.scoped),
  )

  it.live("one password check per account at a time: another attempt meanwhile is 429 at once", () =>
    Effect.gen(function* () {
      const { throttle } = yield* throttleOn(redisUrl())
      const email = `lease-${run}@example.com`
      const release = yield* Deferred.make<void>()
      const first = yield* Effect.forkChild(
        throttle.guard(email, Effect.as(Deferred.await(release), { ok: true, value: 1 })),
      )
      yield* Effect.sleep("50 millis")
      const refused = yield* Effect.flip(throttle.guard(email, right))
      assert.strictEqual(
        refused._tag === "TooManyRequests" && refused.detail,
        "a sign-in for this account is already in progress; retry",
      )
      yield* Deferred.succeed(release, undefined)
      assert.deepStrictEqual(yield* Fiber.join(first), { value: 1, delaySeconds: 0 })
      assert.deepStrictEqual(yield* throttle.guard(email, right), { value: "right", delaySeconds: 0 })
    }).pipe(Effect.scoped),
  )

  it.live("while Redis cannot answer, the instance throttles in its own memory and writes nothing to Redis", () =>
    Effect.gen(function* () {
      const target = new URL(redisUrl())
      const proxy = yield* Effect.acquireRelease(
        Effect.promise(() => faultProxy({ host: target.hostname, port: Number(target.port) })),
        (proxy) => Effect.promise(() => proxy.close()),
      )
      const { throttle, redis: connection } = yield* throttleOn(proxy.via(redisUrl()))
      const redis = yield* raw
      yield* Effect.promise(() => proxy.set("down"))
      yield* midMinute
      const email = `outage-${run}@example.com`
      assert.deepStrictEqual(yield* throttle.guard(email, wrong), { value: "wrong", delaySeconds: 1 })
      assert.isFalse(availabilityOf(connection).up())
      assert.strictEqual((yield* Effect.flip(throttle.guard(email, right)))._tag, "TooManyRequests")
      yield* throttle.admitAddress("10.1.0.3")
      yield* throttle.admitAddress("10.1.0.3")
      assert.strictEqual((yield* Effect.flip(throttle.admitAddress("10.1.0.3"))).limit, 2)
      assert.deepStrictEqual(yield* Effect.promise(() => redis.keys(`${run}auth-login:*${hashOf(email)}`)), [])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.keys(`${run}auth-login:ip:10.1.0.3:*`)), [])
    }).pipe(Effect.scoped),
  )
})
