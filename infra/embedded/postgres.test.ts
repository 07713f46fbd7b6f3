import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { afterAll, describe, expect, it } from "vitest"
import { freePort } from "../../shared/testing/ports.ts"
import { startEmbeddedPostgres } from "./postgres.ts"
import { makeTemplate, templatePath } from "./template.ts"

// `npm start`'s Postgres: a new data folder restored from the template `npm ci` made, kept between runs.
const dir = mkdtempSync(join(tmpdir(), "embedded-pg-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const query = async (url: string, sql: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(sql)).rows
  } finally {
    await client.end()
  }
}

describe("embedded Postgres", () => {
  it("starts a new data folder from the template and keeps its data across restarts", async () => {
    await makeTemplate()
    expect(existsSync(templatePath())).toBe(true)
    // A probed port below the ephemeral range: a random one in it lost to an outgoing connection in CI (EADDRINUSE).
    const port = await freePort()
    const first = await startEmbeddedPostgres(join(dir, "data"), port)
    try {
      await query(first.url, "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (42)")
    } finally {
      await first.stop()
    }
    const again = await startEmbeddedPostgres(join(dir, "data"), port)
    try {
      expect(await query(again.url, "SELECT id FROM kept")).toEqual([{ id: 42 }])
      expect(await query(again.url, "SELECT current_setting('server_version_num')::int >= 170000 AS modern")).toEqual([
        { modern: true },
      ])
    } finally {
      await again.stop()
    }
  }, 60_000)
})
