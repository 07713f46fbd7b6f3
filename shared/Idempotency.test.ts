// Idempotency-Key on the real Postgres: a repeat replays the first answer without doing the work again, another
// request under the same key is a 422, concurrent repeats do the work once, a failure is not remembered, keys are per
// caller, and a key past its 24-hour window starts afresh (the retention job deletes it).
import { randomUUID } from "node:crypto"
import { Effect, Exit, Layer, Option, Schema } from "effect"
import { describe, expect, it } from "vitest"
import { Db } from "./Db.ts"
import { Idempotency, keyOf } from "./Idempotency.ts"
import { kernelMigrations } from "./KernelMigrations.ts"
import { migrate } from "./Migrator.ts"
import * as Retention from "./Retention.ts"
import { freshSchema } from "./testing/harness.ts"

const Created = Schema.Struct({ id: Schema.String, at: Schema.Date })

// A "create" whose runs are counted: each run makes a new id.
const setup = Effect.gen(function* () {
  const db = yield* Db
  yield* migrate(kernelMigrations)
  const idempotency = yield* Idempotency
  let runs = 0
  const create = (caller: string, key: string | undefined, body: unknown, work?: Effect.Effect<void, string>) =>
    idempotency.once(
      { caller, key: Option.fromUndefinedOr(key), request: { route: "POST /things", body } },
      Created,
      Effect.gen(function* () {
        runs++
        if (work) yield* work
        // Written in the same transaction as the key's row.
        yield* db.query(`INSERT INTO ${db.schema}.inbox (consumer, event_id) VALUES ('things', $1)`, [randomUUID()])
        return { id: randomUUID(), at: new Date() }
      }),
    )
  return { db, create, runs: () => runs }
})

const run = <A, E>(effect: Effect.Effect<A, E, Db | Idempotency>) =>
  Effect.runPromise(
    effect.pipe(
      Effect.provide(Idempotency.layer.pipe(Layer.provideMerge(Db.layer(freshSchema("t_idem"))))),
      Effect.scoped,
    ),
  )

describe("Idempotency-Key", () => {
  it("replays the first answer for the same request and refuses another request under the same key", async () => {
    const result = await run(
      Effect.gen(function* () {
        const { create, runs } = yield* setup
        const first = yield* create("alice", "k1", { title: "a", tags: ["x", "y"] })
        // The same body with its keys in another order is the same request.
        const again = yield* create("alice", "k1", { tags: ["x", "y"], title: "a" })
        const other = yield* Effect.exit(create("alice", "k1", { title: "b" }))
        const bob = yield* create("bob", "k1", { title: "b" })
        const unkeyed = [
          yield* create("alice", undefined, { title: "a" }),
          yield* create("alice", undefined, { title: "a" }),
        ]
        return { first, again, other, bob, unkeyed, runs: runs() }
      }),
    )
    expect(result.again).toEqual(result.first)
    expect(result.again.at).toBeInstanceOf(Date)
    expect(Exit.isFailure(result.other) && JSON.stringify(result.other.cause)).toContain("idempotency_key_reused")
    // Keys are per caller: bob's k1 is his own.
    expect(result.bob.id).not.toBe(result.first.id)
    expect(result.unkeyed[0]!.id).not.toBe(result.unkeyed[1]!.id)
    expect(result.runs).toBe(4)
  })

  it("does the work once when the same request races itself, and every racer gets its answer", async () => {
    const result = await run(
      Effect.gen(function* () {
        const { db, create, runs } = yield* setup
        const answers = yield* Effect.forEach(
          [1, 2, 3, 4, 5],
          () => create("alice", "race", { title: "a" }, Effect.sleep("100 millis")),
          { concurrency: "unbounded" },
        )
        const rows = yield* db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.inbox`)
        return { ids: new Set(answers.map((a) => a.id)), runs: runs(), written: rows[0]!.n }
      }),
    )
    expect(result.ids.size).toBe(1)
    expect(result.runs).toBe(1)
    expect(result.written).toBe(1)
  })

  it("remembers nothing of a failed request: a retry does the work", async () => {
    const result = await run(
      Effect.gen(function* () {
        const { db, create, runs } = yield* setup
        const failed = yield* Effect.exit(create("alice", "k", { title: "a" }, Effect.fail("the provider said no")))
        const retried = yield* create("alice", "k", { title: "a" })
        const rows = yield* db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.inbox`)
        return { failed: Exit.isFailure(failed), retried, runs: runs(), written: rows[0]!.n }
      }),
    )
    expect(result.failed).toBe(true)
    expect(result.runs).toBe(2)
    // The failed run's write was rolled back with its key.
    expect(result.written).toBe(1)
  })

  it("starts afresh after 24 hours, and the retention job deletes keys past their window", async () => {
    const result = await run(
      Effect.gen(function* () {
        const { db, create, runs } = yield* setup
        const first = yield* create("alice", "old", { title: "a" })
        yield* create("alice", "young", { title: "a" })
        yield* db.query(
          `UPDATE ${db.schema}.idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'`,
        )
        // Another request under the expired key is new work, not a 422.
        const after = yield* create("alice", "old", { title: "b" })
        yield* db.query(
          `UPDATE ${db.schema}.idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'`,
        )
        const pruned = yield* Retention.run.pipe(
          Effect.provide(
            Retention.layer(
              Retention.kernelRules({
                eventRetentionDays: 7,
                inboxRetentionDays: 14,
                mailRetentionDays: 7,
                kafkaBrokers: Option.none(),
              }),
              100,
            ),
          ),
        )
        const keys = yield* db.query<{ key: string }>(`SELECT key FROM ${db.schema}.idempotency_keys`)
        return { first, after, runs: runs(), pruned: pruned.idempotency_keys, keys: keys.map((k) => k.key) }
      }),
    )
    expect(result.after.id).not.toBe(result.first.id)
    expect(result.runs).toBe(3)
    expect(result.pruned).toBe(1)
    expect(result.keys).toEqual(["young"])
  })

  it("refuses a header that is empty, too long or not visible ASCII with a 400 naming it", async () => {
    const keyOfHeader = (value: string | undefined) =>
      Effect.runPromise(Effect.exit(keyOf(value === undefined ? {} : { "idempotency-key": value })))
    expect(await keyOfHeader(undefined)).toEqual(Exit.succeed(Option.none()))
    expect(await keyOfHeader("order-42")).toEqual(Exit.succeed(Option.some("order-42")))
    for (const bad of ["", "x".repeat(256), "with space", "ünïcode"]) {
      const exit = await keyOfHeader(bad)
      expect(Exit.isFailure(exit) && JSON.stringify(exit.cause), bad).toContain("Idempotency-Key")
    }
  })
})
