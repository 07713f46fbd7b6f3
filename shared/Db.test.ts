import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { CLIENT_TIMEOUT, Db, type DbError, IN_FAILED_TRANSACTION } from "./Db.ts"
import { serviceDb } from "./testing/busHarness.ts"
import { faultProxy } from "./testing/faultProxy.ts"
import { freshSchema } from "./testing/harness.ts"

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

describe("Db timeouts (a hung Postgres, through a fault proxy)", () => {
  const hungDb = Effect.gen(function* () {
    const options = freshSchema("t_hung")
    const target = new URL(Redacted.value(options.url))
    const proxy = yield* Effect.acquireRelease(
      Effect.promise(() => faultProxy({ host: target.hostname, port: Number(target.port) })),
      (p) => Effect.promise(() => p.close()),
    )
    const db = Context.get(
      yield* Layer.build(
        Db.layer({
          ...options,
          url: Redacted.make(proxy.via(target.toString())),
          queryTimeoutMs: 500,
          connectTimeoutMs: 500,
        }),
      ),
      Db,
    )
    return { db, proxy }
  })

  // Elapsed milliseconds and the DbError of an effect that must fail.
  const failure = <A>(effect: Effect.Effect<A, DbError>) =>
    Effect.timed(Effect.flip(effect)).pipe(Effect.map(([d, error]) => ({ ms: Duration.toMillis(d), error })))

  it.live("a query, a transaction and a new connection give up after their bounds, then work when it answers", () =>
    Effect.gen(function* () {
      const { db, proxy } = yield* hungDb
      assert.deepStrictEqual(yield* db.query("SELECT 1 AS one"), [{ one: 1 }])

      yield* Effect.promise(() => proxy.set("hang"))
      // Without client-side bounds each of these waits forever (the vitest timeout).
      const query = yield* failure(db.query("SELECT 1"))
      assert.strictEqual(query.error.code, CLIENT_TIMEOUT)
      assert.isBelow(query.ms, 3_000)
      // The pool's connection was destroyed with its query: the next one connects anew and hangs in the handshake.
      const connect = yield* failure(db.query("SELECT 1"))
      assert.strictEqual(connect.error.code, CLIENT_TIMEOUT, connect.error.message)
      assert.isBelow(connect.ms, 3_000)

      yield* Effect.promise(() => proxy.set("pass"))
      assert.deepStrictEqual(yield* db.query("SELECT 2 AS two"), [{ two: 2 }])
      yield* Effect.promise(() => proxy.set("hang"))
      // In a transaction the hung query fails it at once: no ROLLBACK sent to a server that does not answer.
      const tx = yield* failure(db.transaction(db.query("SELECT 1")))
      assert.strictEqual(tx.error.code, CLIENT_TIMEOUT)
      assert.isBelow(tx.ms, 1_800) // one bound (500 + 500 ms), not two

      yield* Effect.promise(() => proxy.set("pass"))
      assert.deepStrictEqual(yield* db.transaction(db.query("SELECT 3 AS three")), [{ three: 3 }])
      assert.strictEqual(db.pool.waitingCount, 0)
    }).pipe(Effect.scoped),
  )

  it.live("a slow statement is cancelled by the server at the query bound, and the connection stays usable", () =>
    Effect.gen(function* () {
      const { db } = yield* hungDb
      const slow = yield* failure(db.query("SELECT pg_sleep(5)"))
      assert.strictEqual(slow.error.code, "57014") // query_canceled: statement_timeout
      assert.isBelow(slow.ms, 3_000)
      assert.deepStrictEqual(yield* db.query("SELECT 1 AS one"), [{ one: 1 }])
      assert.strictEqual(db.pool.totalCount, 1)
    }).pipe(Effect.scoped),
  )
})

describe("Db.savepoint", () => {
  it.live("undoes only the failed work and its afterCommit, takes no SAVEPOINT without a query, nests", () =>
    Effect.gen(function* () {
      const db = yield* serviceDb("t_sp")
      yield* db.query(`CREATE TABLE ${db.schema}.notes (text text)`)
      const note = (text: string) => db.query(`INSERT INTO ${db.schema}.notes VALUES ($1)`, [text])
      const ran: Array<string> = []
      const onCommit = (label: string) => db.afterCommit(Effect.sync(() => void ran.push(label)))
      // The savepoint statements the pool's sessions are sent.
      const sent: Array<string> = []
      const spied = new WeakSet<object>()
      db.pool.on("acquire", (client) => {
        if (spied.has(client)) return
        spied.add(client)
        const query = client.query.bind(client) as (...args: Array<unknown>) => unknown
        Object.assign(client, {
          query: (...args: Array<unknown>) => {
            if (typeof args[0] === "string" && /SAVEPOINT/.test(args[0])) sent.push(args[0])
            return query(...args)
          },
        })
      })
      const statements: Array<string> = []
      yield* db.transaction(
        Effect.gen(function* () {
          yield* note("a")
          yield* Effect.flip(db.savepoint(Effect.andThen(onCommit("failed"), Effect.fail("no query" as const))))
          yield* Effect.flip(db.savepoint(Effect.andThen(note("b"), Effect.andThen(onCommit("b"), Effect.fail("x")))))
          yield* db.savepoint(
            Effect.gen(function* () {
              yield* note("c")
              yield* onCommit("c")
              // An inner failure keeps the outer savepoint's own work.
              yield* Effect.flip(db.savepoint(Effect.andThen(note("d"), Effect.fail("inner"))))
              yield* note("e")
            }),
          )
          yield* Effect.flip(
            db.savepoint(
              Effect.gen(function* () {
                yield* note("f")
                yield* db.savepoint(note("g"))
                return yield* Effect.fail("outer")
              }),
            ),
          )
          statements.push(
            ...(yield* db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${db.schema}.notes`)).map((row) =>
              String(row.n),
            ),
          )
        }),
      )
      const rows = yield* db.query<{ text: string }>(`SELECT text FROM ${db.schema}.notes ORDER BY text`)
      assert.deepStrictEqual(
        rows.map((row) => row.text),
        ["a", "c", "e"],
      )
      // The failed work's afterCommit is dropped, the kept work's runs after COMMIT.
      assert.deepStrictEqual(ran, ["c"])
      // Inside the transaction, after the rollbacks to savepoints, the same three rows.
      assert.deepStrictEqual(statements, ["3"])
      // None for the work without a query; an outer one taken before the inner one it holds.
      assert.deepStrictEqual(sent, [
        "SAVEPOINT nested_1",
        "ROLLBACK TO SAVEPOINT nested_1",
        "SAVEPOINT nested_1",
        "SAVEPOINT nested_2",
        "ROLLBACK TO SAVEPOINT nested_2",
        "SAVEPOINT nested_1",
        "SAVEPOINT nested_2",
        "ROLLBACK TO SAVEPOINT nested_1",
      ])
    }).pipe(Effect.scoped),
  )
})

describe("Db: work that catches a failed statement and goes on", () => {
  it.live(
    "fails its transaction (nothing committed) or its savepoint (the rest kept) instead of a silent rollback",
    () =>
      Effect.gen(function* () {
        const db = yield* serviceDb("t_abort")
        yield* db.query(`CREATE TABLE ${db.schema}.notes (text text)`)
        const note = (text: string) => db.query(`INSERT INTO ${db.schema}.notes VALUES ($1)`, [text])
        const swallowed = Effect.ignore(db.query("SELECT 1 / 0"))
        const texts = Effect.map(
          db.query<{ text: string }>(`SELECT text FROM ${db.schema}.notes ORDER BY text`),
          (rows) => rows.map((row) => row.text),
        )

        const error = yield* Effect.flip(db.transaction(Effect.andThen(note("a"), swallowed)))
        assert.strictEqual(error._tag, "DbError")
        assert.strictEqual((error as DbError).code, IN_FAILED_TRANSACTION)
        assert.deepStrictEqual(yield* texts, [])

        yield* db.transaction(
          Effect.gen(function* () {
            yield* note("x")
            const inner = yield* Effect.flip(db.savepoint(Effect.andThen(note("y"), swallowed)))
            assert.strictEqual((inner as DbError).code, IN_FAILED_TRANSACTION)
            yield* note("z")
          }),
        )
        assert.deepStrictEqual(yield* texts, ["x", "z"])
        // The pool's connections are usable afterwards.
        assert.deepStrictEqual(
          (yield* db.query<{ n: number }>("SELECT 1 AS n")).map((r) => r.n),
          [1],
        )
      }).pipe(Effect.scoped),
  )
})
