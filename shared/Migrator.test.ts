import { Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { Db } from "./Db.ts"
import { type Migration, migrate } from "./Migrator.ts"
import { freshSchema, sql } from "./testing/harness.ts"

const migrations: ReadonlyArray<Migration> = [
  { id: "0001_a", sql: "CREATE TABLE a (id int PRIMARY KEY); SELECT pg_sleep(0.3);" },
  { id: "0002_b", sql: "CREATE TABLE b (id int PRIMARY KEY REFERENCES a (id));" },
]

// Each "instance" has its own pool, as two containers starting at once would.
const runOn = (options: ReturnType<typeof freshSchema>, list: ReadonlyArray<Migration>) =>
  Effect.runPromise(migrate(list).pipe(Effect.provide(Db.layer(options)), Effect.scoped))

describe("Migrator", () => {
  it("two instances starting at once apply each migration exactly once", async () => {
    const db = freshSchema("mig")
    const [first, second] = await Promise.all([runOn(db, migrations), runOn(db, migrations)])
    expect([...first, ...second].sort()).toEqual(["0001_a", "0002_b"])
    const rows = await sql(`SELECT id FROM ${db.schema}.schema_migrations ORDER BY id`)
    expect(rows.map((r) => r.id)).toEqual(["0001_a", "0002_b"])
    expect(await runOn(db, migrations)).toEqual([])
  })

  it("a failing migration rolls back and leaves nothing half-applied", async () => {
    const db = freshSchema("mig")
    const broken = [...migrations, { id: "0003_c", sql: "CREATE TABLE c (id int); SELECT 1/0;" }]
    await expect(runOn(db, broken)).rejects.toThrow(/migration failed/)
    const tables = await sql("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", [db.schema])
    expect(tables.map((t) => t.table_name).sort()).toEqual(["a", "b", "schema_migrations"])
  })

  it("a migration, and waiting for another instance's, may outlast the pool's query bound; requests may not", async () => {
    const db = { ...freshSchema("mig"), queryTimeoutMs: 200, poolMax: 1 }
    const slow = [{ id: "0001_slow", sql: "CREATE TABLE a (id int); SELECT pg_sleep(0.6);" }]
    // One connection: the request after the migration runs on the session the migration used.
    const migrateThenQuery = Effect.runPromise(
      Effect.gen(function* () {
        const applied = yield* migrate(slow)
        const error = yield* Effect.flip((yield* Db).query("SELECT pg_sleep(0.6)"))
        return { applied, error: error.message }
      }).pipe(Effect.provide(Db.layer(db)), Effect.scoped),
    )
    const [mine, other] = await Promise.all([migrateThenQuery, runOn(db, slow)])
    expect([...mine.applied, ...other]).toEqual(["0001_slow"])
    // The migration's unbounded statement_timeout was reset before its connection went back to the pool.
    expect(mine.error).toMatch(/statement timeout/)
  })

  it("refuses to start when an applied migration was edited", async () => {
    const db = freshSchema("mig")
    await runOn(db, migrations)
    const edited = [migrations[0]!, { id: "0002_b", sql: "CREATE TABLE b (id bigint);" }]
    await expect(runOn(db, edited)).rejects.toThrow(/changed after it was applied/)
  })

  it("the Db transaction helper commits together and rolls back together", async () => {
    const options = freshSchema("tx")
    await sql(`CREATE SCHEMA ${options.schema}; CREATE TABLE ${options.schema}.t (id int PRIMARY KEY)`)
    const program = Effect.gen(function* () {
      const db = yield* Db
      yield* db.transaction(db.query(`INSERT INTO ${db.schema}.t VALUES (1), (2)`))
      const pidOf = db.transaction(db.query<{ pid: number }>("SELECT pg_backend_pid() AS pid"))
      const [before] = yield* pidOf
      const failed = yield* Effect.exit(
        db.transaction(Effect.andThen(db.query(`INSERT INTO ${db.schema}.t VALUES (3)`), Effect.fail("boom" as const))),
      )
      // A business failure rolls back cleanly and keeps the pooled connection (no reconnect per failure).
      const [after] = yield* pidOf
      const duplicate = yield* Effect.exit(db.query(`INSERT INTO ${db.schema}.t VALUES (1)`))
      const rows = yield* db.query<{ id: number }>(`SELECT id FROM ${db.schema}.t ORDER BY id`)
      return { failed, duplicate, ids: rows.map((r) => r.id), samePid: before?.pid === after?.pid }
    })
    const result = await Effect.runPromise(program.pipe(Effect.provide(Layer.fresh(Db.layer(options))), Effect.scoped))
    expect(result.failed._tag).toBe("Failure")
    expect(result.samePid).toBe(true)
    expect(result.duplicate._tag === "Failure" && JSON.stringify(result.duplicate.cause)).toMatch(/23505/)
    expect(result.ids).toEqual([1, 2])
  })
})
