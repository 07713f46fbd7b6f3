import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { Health, register } from "./Health.ts"

describe("Health", () => {
  it.effect("every check of a name counts, and a check leaves with the scope that registered it", () =>
    Effect.gen(function* () {
      const health = yield* Health
      const first = yield* Scope.make()
      yield* register("redis", Effect.void).pipe(Scope.provide(first))
      const second = yield* Scope.make()
      yield* register("redis", Effect.fail("down")).pipe(Scope.provide(second))
      assert.deepStrictEqual(yield* health.readiness, { ok: false, checks: { redis: "failing" } })
      yield* Scope.close(second, Exit.void)
      assert.deepStrictEqual(yield* health.readiness, { ok: true, checks: { redis: "ok" } })
      yield* Scope.close(first, Exit.void)
      assert.deepStrictEqual(yield* health.readiness, { ok: true, checks: {} })
    }).pipe(Effect.provide(Health.layer)),
  )

  it.effect("a failing non-critical check reads degraded and leaves the process ready", () =>
    Effect.gen(function* () {
      const health = yield* Health
      yield* register("postgres", Effect.void)
      yield* register("redis", Effect.fail("down"), { critical: false })
      assert.deepStrictEqual(yield* health.readiness, { ok: true, checks: { postgres: "ok", redis: "degraded" } })
      yield* register("redis", Effect.fail("down"))
      assert.deepStrictEqual(yield* health.readiness, { ok: false, checks: { postgres: "ok", redis: "failing" } })
    }).pipe(Effect.scoped, Effect.provide(Health.layer)),
  )
})
