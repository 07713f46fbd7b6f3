import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { serviceDb } from "./testing/busHarness.ts"

describe("Db.afterCommit", () => {
  it.live("runs after COMMIT (seeing the committed row), never after a rollback, at once outside a transaction", () =>
    Effect.gen(function* () {
      const db = yield* serviceDb("t_db")
      yield* db.query(`CREATE TABLE ${db.schema}.notes (text text)`)
      const ran: Array<string> = []
      const seen = (label: string) =>
        Effect.map(db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.notes`), (rows) => {
          ran.push(`${label}:${rows[0]?.n}`)
        }).pipe(Effect.orDie)

      yield* db.transaction(
        Effect.gen(function* () {
          yield* db.query(`INSERT INTO ${db.schema}.notes VALUES ('a')`)
          // A nested transaction joins the outer one: its work waits for the outer COMMIT too.
          yield* db.transaction(db.afterCommit(seen("committed")))
          assert.deepStrictEqual(ran, [])
        }),
      )
      assert.deepStrictEqual(ran, ["committed:1"])

      yield* Effect.flip(
        db.transaction(Effect.andThen(db.afterCommit(seen("rolled back")), Effect.fail("boom" as const))),
      )
      yield* db.afterCommit(seen("outside"))
      assert.deepStrictEqual(ran, ["committed:1", "outside:1"])
    }).pipe(Effect.scoped),
  )
})
