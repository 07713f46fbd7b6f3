import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { startIssuer, type TokenIssuer } from "../authz/testing/authzHarness.ts"
import { freshBlogSchema, startBlog } from "./testing/blogApp.ts"

// BLOG_SEARCH_LANGUAGE: search uses the configured text search configuration, the stored column is rebuilt once when
// it changes, and a configuration the database lacks stops the start naming it.

const author = randomUUID()
const grants = { [author]: ["blog.post.create", "blog.post.publish"] }
let issuer: TokenIssuer

beforeAll(async () => {
  issuer = await startIssuer()
}, 30_000)
afterAll(() => issuer?.close())

describe("search language", () => {
  it("stems in english, not in simple; switching rebuilds the search column of the posts already written", async () => {
    const schema = freshBlogSchema()
    const english = await startBlog({ grants, schema, issuer })
    const headers = { ...(await english.as(author)), "content-type": "application/json" }
    const created = await fetch(`${english.url}/api/v1/blog/posts`, {
      method: "POST",
      headers,
      body: JSON.stringify({ title: "Running wolves", body: "The wolves were running." }),
    })
    const { id } = (await created.json()) as { id: string }
    await fetch(`${english.url}/api/v1/blog/posts/${id}/publish`, { method: "POST", headers, body: "{}" })
    const found = async (url: string, q: string) =>
      ((await (await fetch(`${url}/api/v1/blog/posts?q=${q}`)).json()) as { items: Array<{ id: string }> }).items.map(
        (p) => p.id,
      )
    // english stems: "run" and "runs" find "running".
    expect(await found(english.url, "run")).toEqual([id])
    expect(await found(english.url, "runs")).toEqual([id])
    await english.close()

    const simple = await startBlog({ grants, schema, issuer, env: { BLOG_SEARCH_LANGUAGE: "simple" } })
    try {
      expect(await found(simple.url, "run")).toEqual([])
      expect(await found(simple.url, "running")).toEqual([id])
      const [settings] = await sql(`SELECT language FROM ${schema}.search_settings`)
      expect(settings.language).toBe("simple")
      const [column] = await sql(
        `SELECT pg_get_expr(d.adbin, d.adrelid) AS expression FROM pg_attrdef d
         JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
         WHERE d.adrelid = $1::regclass AND a.attname = 'search'`,
        [`${schema}.posts`],
      )
      expect(column.expression).toContain("'simple'::regconfig")
      // Still kept in the row (migration 0101), as searching it needs.
      const [storage] = await sql(
        `SELECT attstorage FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'search'`,
        [`${schema}.posts`],
      )
      expect(storage.attstorage).toBe("m")
    } finally {
      await simple.close()
    }
  }, 60_000)

  it("refuses to start with a configuration the database does not have, naming it", async () => {
    await expect(startBlog({ grants, issuer, env: { BLOG_SEARCH_LANGUAGE: "klingon" } })).rejects.toThrow(
      /BLOG_SEARCH_LANGUAGE=klingon: the database has no such text search configuration/,
    )
  }, 30_000)
})
