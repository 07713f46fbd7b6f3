import { PGlite } from "@electric-sql/pglite"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../shared/testing/ports.ts"
import { PgliteServer } from "./pgliteServer.ts"

// The embedded Postgres of `npm start`: one PGlite session behind a wire-protocol server, many pools at once.
let db: PGlite
let server: PgliteServer
let port: number
beforeAll(async () => {
  // Probed, below the ephemeral range (a random one in it can be taken by an outgoing connection).
  port = await freePort()
  db = await PGlite.create()
  server = new PgliteServer(db, { host: "127.0.0.1", port })
  await server.start()
  await db.exec("CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL)")
})
afterAll(async () => {
  await server?.stop()
  await db?.close()
})

const pool = () => new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, max: 4 })

describe("PgliteServer", () => {
  it("keeps many clients' parameterised queries and transactions apart", async () => {
    const pools = Array.from({ length: 4 }, pool)
    try {
      await db.query("INSERT INTO counters VALUES (1, 0)")
      const work = pools.flatMap((p, i) =>
        Array.from({ length: 50 }, async (_, j) => {
          // Different statements with different parameter counts at once: the failure mode of message-level queueing.
          const echoed = await p.query("SELECT $1::int AS a, $2::text AS b", [i * 100 + j, `p${i}`])
          expect(echoed.rows[0]).toEqual({ a: i * 100 + j, b: `p${i}` })
          const client = await p.connect()
          try {
            await client.query("BEGIN")
            const { rows } = await client.query("SELECT n FROM counters WHERE id = $1", [1])
            await client.query("UPDATE counters SET n = $1 WHERE id = $2", [rows[0].n + 1, 1])
            await client.query("COMMIT")
          } finally {
            client.release()
          }
        }),
      )
      await Promise.all(work)
      // Transactions were serialised: no lost update.
      expect((await db.query<{ n: number }>("SELECT n FROM counters WHERE id = 1")).rows[0]?.n).toBe(200)
    } finally {
      await Promise.all(pools.map((p) => p.end()))
    }
  })

  it("rolls back the transaction of a client that disconnects inside it", async () => {
    const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` })
    client.on("error", () => {})
    await client.connect()
    await client.query("BEGIN")
    await client.query("INSERT INTO counters VALUES (2, 42)")
    client.connection.stream.destroy()
    const other = pool()
    try {
      const { rows } = await other.query("SELECT count(*)::int AS c FROM counters WHERE id = $1", [2])
      expect(rows[0].c).toBe(0)
    } finally {
      await other.end()
    }
  })
})
