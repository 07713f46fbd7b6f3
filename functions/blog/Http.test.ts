import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { XMLParser, XMLValidator } from "fast-xml-parser"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { Posts } from "./Posts.ts"
import { type BlogUnderTest, freshBlogSchema, startBlog } from "./testing/blogApp.ts"

// Blog as main.ts runs it on the real Postgres: every route of the Blog table, its ownership rules (authz's answers
// stood in for), conditional requests, idempotent creation, search, the feed, scheduling and bad input.

const alice = randomUUID() // an author: writes and publishes her own posts
const bob = randomUUID() // another author
const mallory = randomUUID() // writes, may not publish
const editor = randomUUID() // acts on anyone's posts
const reader = randomUUID() // holds nothing
const grants = {
  [alice]: ["blog.post.create", "blog.post.publish"],
  [bob]: ["blog.post.create", "blog.post.publish"],
  [mallory]: ["blog.post.create"],
  [editor]: ["blog.post.read.any", "blog.post.update.any", "blog.post.publish.any", "blog.post.delete.any"],
}

const schema = freshBlogSchema()
let blog: BlogUnderTest
const headers: Record<string, Record<string, string>> = {}

beforeAll(async () => {
  blog = await startBlog({ grants, schema })
  for (const user of [alice, bob, mallory, editor, reader]) headers[user] = await blog.as(user)
}, 60_000)
afterAll(() => blog?.close())

type Post = {
  id: string
  slug: string
  title: string
  excerpt: string
  body: string
  html: string
  status: string
  publishAt: string | null
  publishedAt: string | null
  authorId: string
  tags: Array<string>
  attachments: Array<unknown>
  version: number
  createdAt: string
  updatedAt: string
}
type Problem = { status: number; code: string; detail?: string; errors?: Array<{ path: string; message: string }> }
type Page = { items: Array<Post>; nextCursor: string | null }

const call = async (
  method: string,
  path: string,
  options: { as?: string; body?: unknown; headers?: Record<string, string> } = {},
) => {
  const response = await fetch(`${blog.url}${path}`, {
    method,
    headers: {
      ...(options.as ? headers[options.as] : {}),
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  })
  const text = await response.text()
  const type = response.headers.get("content-type") ?? ""
  return {
    status: response.status,
    headers: response.headers,
    type,
    body: (type.includes("json") && text !== "" ? JSON.parse(text) : text) as Post & Problem & Page,
  }
}

const create = async (as: string, body: Record<string, unknown>, extra: Record<string, string> = {}) => {
  const res = await call("POST", "/api/v1/blog/posts", { as, body, headers: extra })
  expect(res.status, JSON.stringify(res.body)).toBe(201)
  return res.body as Post
}
const publish = async (as: string, id: string, body: Record<string, unknown> = {}) => {
  const res = await call("POST", `/api/v1/blog/posts/${id}/publish`, { as, body })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return res.body as Post
}
const eventsOf = async (postId: string, type?: string) =>
  (
    await sql(
      `SELECT event FROM ${schema}.outbox WHERE key = $1 ${type ? "AND event->>'type' = $2" : ""} ORDER BY seq`,
      type ? [postId, type] : [postId],
    )
  ).map((row) => row.event as { type: string; data: Record<string, unknown> })

describe("writing posts", () => {
  it("creates a draft: 201, Location, ETag, slug from the title folded to ASCII, sanitised HTML, an event", async () => {
    const res = await call("POST", "/api/v1/blog/posts", {
      as: alice,
      body: { title: "Grüße aus Köln!", excerpt: "Hallo", body: "# Hi\n\n<script>alert(1)</script>", tags: ["news"] },
    })
    expect(res.status).toBe(201)
    const post = res.body as Post
    expect(res.headers.get("location")).toBe(`/api/v1/blog/posts/${post.id}`)
    expect(res.headers.get("etag")).toBe('"1"')
    expect(post).toMatchObject({
      slug: "gruesse-aus-koeln",
      title: "Grüße aus Köln!",
      excerpt: "Hallo",
      body: "# Hi\n\n<script>alert(1)</script>",
      status: "draft",
      publishAt: null,
      publishedAt: null,
      authorId: alice,
      tags: ["news"],
      attachments: [],
      version: 1,
    })
    expect(post.html).toBe("<h1>Hi</h1>\n<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n")
    const events = await eventsOf(post.id)
    expect(events.map((e) => e.type)).toEqual(["blog.post.created"])
    expect(events[0]!.data).toMatchObject({ postId: post.id, slug: post.slug, authorId: alice, actor: alice })
  })

  it("keeps slugs unique under concurrency: -2, -3 … and a given slug that is taken is 409", async () => {
    const title = `Same title ${randomUUID().slice(0, 8)}`
    // More writers at once than a write's attempts: each still gets its own slug, in sequence.
    const posts = await Promise.all(Array.from({ length: 12 }, () => create(alice, { title })))
    const base = title.toLowerCase().replaceAll(" ", "-")
    expect(posts.map((p) => p.slug).sort()).toEqual(
      [base, ...Array.from({ length: 11 }, (_, i) => `${base}-${i + 2}`)].sort(),
    )
    const taken = await call("POST", "/api/v1/blog/posts", { as: bob, body: { title: "x", slug: base } })
    expect(taken.status).toBe(409)
    expect(taken.body.code).toBe("conflict")
    const given = await create(bob, { title: "x", slug: `${base}-custom` })
    expect(given.slug).toBe(`${base}-custom`)
  })

  it("answers a repeated Idempotency-Key with the first post, another request under it with 422", async () => {
    const key = { "idempotency-key": randomUUID() }
    const title = `Once ${randomUUID()}`
    const first = await create(alice, { title }, key)
    const again = await call("POST", "/api/v1/blog/posts", { as: alice, body: { title }, headers: key })
    expect(again.status).toBe(201)
    expect(again.body.id).toBe(first.id)
    const rows = await sql(`SELECT count(*)::int AS n FROM ${schema}.posts WHERE title = $1`, [title])
    expect(rows[0].n).toBe(1)
    const other = await call("POST", "/api/v1/blog/posts", { as: alice, body: { title: "another" }, headers: key })
    expect(other.status).toBe(422)
    expect(other.body.code).toBe("idempotency_key_reused")
    // Keys are per caller: bob's request under alice's key is his own.
    const bobs = await call("POST", "/api/v1/blog/posts", { as: bob, body: { title }, headers: key })
    expect(bobs.status).toBe(201)
    expect(bobs.body.id).not.toBe(first.id)
  })

  it("changes a post with If-Match; a stale version is 412 and the post is unchanged", async () => {
    const post = await create(alice, { title: "Draft title", body: "old" })
    const stale = await call("PATCH", `/api/v1/blog/posts/${post.id}`, {
      as: alice,
      body: { body: "new" },
      headers: { "if-match": '"7"' },
    })
    expect(stale.status).toBe(412)
    expect(stale.body.code).toBe("precondition_failed")
    const weak = await call("PATCH", `/api/v1/blog/posts/${post.id}`, {
      as: alice,
      body: { body: "new" },
      headers: { "if-match": 'W/"1"' },
    })
    expect(weak.status).toBe(412)
    const changed = await call("PATCH", `/api/v1/blog/posts/${post.id}`, {
      as: alice,
      body: { title: "Better title", body: "**new**", tags: ["a", "b"] },
      headers: { "if-match": '"1"' },
    })
    expect(changed.status).toBe(200)
    expect(changed.headers.get("etag")).toBe('"2"')
    // A draft never published follows its title.
    expect(changed.body).toMatchObject({ version: 2, title: "Better title", slug: "better-title", tags: ["a", "b"] })
    expect(changed.body.html).toBe("<p><strong>new</strong></p>\n")
    const updated = await eventsOf(post.id, "blog.post.updated")
    expect(updated.at(-1)!.data.changes).toEqual(["title", "body", "tags", "slug"])
    // Nothing to change: no new version.
    const same = await call("PATCH", `/api/v1/blog/posts/${post.id}`, { as: alice, body: { title: "Better title" } })
    expect(same.body.version).toBe(2)
  })

  it("lets exactly one of two concurrent PATCHes with the same version win; the other is 412", async () => {
    const post = await create(alice, { title: "Contended" })
    for (let round = 0; round < 3; round++) {
      const current = (await call("GET", `/api/v1/blog/posts/${post.id}`, { as: alice })).body as Post
      const results = await Promise.all(
        ["one", "two"].map((who) =>
          call("PATCH", `/api/v1/blog/posts/${post.id}`, {
            as: alice,
            body: { body: `${who} ${round}` },
            headers: { "if-match": `"${current.version}"` },
          }),
        ),
      )
      expect(results.map((r) => r.status).sort()).toEqual([200, 412])
      const winner = results.find((r) => r.status === 200)!.body as Post
      const now = (await call("GET", `/api/v1/blog/posts/${post.id}`, { as: alice })).body as Post
      expect(now.version).toBe(current.version + 1)
      expect(now.body).toBe(winner.body)
    }
  })

  it("keeps a published post's slug when its title changes, unless a slug is given; another's slug is 409", async () => {
    const post = await create(alice, { title: "Stable slug" })
    await publish(alice, post.id)
    const retitled = await call("PATCH", `/api/v1/blog/posts/${post.id}`, { as: alice, body: { title: "New name" } })
    expect(retitled.body.slug).toBe("stable-slug")
    const other = await create(bob, { title: "Occupied" })
    const clash = await call("PATCH", `/api/v1/blog/posts/${post.id}`, { as: alice, body: { slug: other.slug } })
    expect(clash.status).toBe(409)
    const moved = await call("PATCH", `/api/v1/blog/posts/${post.id}`, { as: alice, body: { slug: "moved-here" } })
    expect(moved.status).toBe(200)
    expect(moved.body.slug).toBe("moved-here")
    expect((await call("GET", "/api/v1/blog/posts/moved-here")).status).toBe(200)
  })

  it("enforces ownership: own with the permission, anyone's with .any; unseen drafts are 404, seen posts 403", async () => {
    const draft = await create(alice, { title: "Alice's draft" })
    // bob cannot see alice's draft: it does not exist for him.
    expect((await call("PATCH", `/api/v1/blog/posts/${draft.id}`, { as: bob, body: { title: "x" } })).status).toBe(404)
    expect((await call("DELETE", `/api/v1/blog/posts/${draft.id}`, { as: bob })).status).toBe(404)
    // The editor may act on anyone's.
    const edited = await call("PATCH", `/api/v1/blog/posts/${draft.id}`, { as: editor, body: { excerpt: "edited" } })
    expect(edited.status).toBe(200)
    const published = await publish(alice, draft.id)
    // Published, bob sees it but may not change, publish or delete it.
    expect((await call("PATCH", `/api/v1/blog/posts/${draft.id}`, { as: bob, body: { title: "x" } })).status).toBe(403)
    expect((await call("POST", `/api/v1/blog/posts/${draft.id}/unpublish`, { as: bob })).status).toBe(403)
    expect((await call("DELETE", `/api/v1/blog/posts/${draft.id}`, { as: bob })).status).toBe(403)
    // mallory writes but may not publish her own.
    const hers = await create(mallory, { title: "Mallory's" })
    const refused = await call("POST", `/api/v1/blog/posts/${hers.id}/publish`, { as: mallory, body: {} })
    expect(refused.status).toBe(403)
    expect(refused.body.code).toBe("forbidden")
    expect((await call("PATCH", `/api/v1/blog/posts/${hers.id}`, { as: mallory, body: { body: "ok" } })).status).toBe(
      200,
    )
    // Signed-in routes refuse anonymous callers; creating needs blog.post.create.
    expect((await call("PATCH", `/api/v1/blog/posts/${hers.id}`, { body: { body: "x" } })).status).toBe(401)
    expect((await call("POST", "/api/v1/blog/posts", { as: reader, body: { title: "x" } })).status).toBe(403)
    expect(published.status).toBe("published")
  })

  it("publishes now (also for a publishAt in the past), unpublishes back to draft, one event each", async () => {
    const post = await create(alice, { title: "To publish" })
    const published = await publish(alice, post.id, { publishAt: "2001-01-01T00:00:00Z" })
    expect(published).toMatchObject({ status: "published", publishAt: null, version: 2 })
    expect(Date.parse(published.publishedAt!)).toBeGreaterThan(Date.now() - 60_000)
    // Publishing a published post again changes nothing.
    expect((await publish(alice, post.id)).version).toBe(2)
    expect((await call("GET", `/api/v1/blog/posts/${post.slug}`)).status).toBe(200)
    const stale = await call("POST", `/api/v1/blog/posts/${post.id}/unpublish`, {
      as: alice,
      headers: { "if-match": '"1"' },
    })
    expect(stale.status).toBe(412)
    const draft = await call("POST", `/api/v1/blog/posts/${post.id}/unpublish`, { as: alice })
    expect(draft.status).toBe(200)
    expect(draft.body).toMatchObject({ status: "draft", publishedAt: null, version: 3 })
    expect((await call("GET", `/api/v1/blog/posts/${post.slug}`)).status).toBe(404)
    expect((await eventsOf(post.id)).map((e) => e.type)).toEqual([
      "blog.post.created",
      "blog.post.published",
      "blog.post.unpublished",
    ])
    // Scheduling a published post must go through unpublishing.
    await publish(alice, post.id)
    const later = new Date(Date.now() + 3_600_000).toISOString()
    const conflict = await call("POST", `/api/v1/blog/posts/${post.id}/publish`, {
      as: alice,
      body: { publishAt: later },
    })
    expect(conflict.status).toBe(409)
  })

  it("deletes with If-Match: stale 412, then 204, gone, one event", async () => {
    const post = await create(alice, { title: "Doomed" })
    const stale = await call("DELETE", `/api/v1/blog/posts/${post.id}`, { as: alice, headers: { "if-match": '"2"' } })
    expect(stale.status).toBe(412)
    const gone = await call("DELETE", `/api/v1/blog/posts/${post.id}`, { as: alice, headers: { "if-match": '"1"' } })
    expect(gone.status).toBe(204)
    expect((await call("GET", `/api/v1/blog/posts/${post.id}`, { as: alice })).status).toBe(404)
    expect((await call("DELETE", `/api/v1/blog/posts/${post.id}`, { as: alice })).status).toBe(404)
    expect((await eventsOf(post.id, "blog.post.deleted")).length).toBe(1)
    // The editor deletes anyone's.
    const bobs = await create(bob, { title: "Bob's doomed" })
    expect((await call("DELETE", `/api/v1/blog/posts/${bobs.id}`, { as: editor })).status).toBe(204)
  })
})

describe("reading posts", () => {
  it("shows a draft only to its author and readers of everything; a bad token is 401, none anonymous", async () => {
    const post = await create(alice, { title: "Secret draft" })
    for (const path of [post.id, post.slug]) {
      expect((await call("GET", `/api/v1/blog/posts/${path}`)).status).toBe(404)
      expect((await call("GET", `/api/v1/blog/posts/${path}`, { as: bob })).status).toBe(404)
      const own = await call("GET", `/api/v1/blog/posts/${path}`, { as: alice })
      expect(own.status).toBe(200)
      expect(own.headers.get("cache-control")).toBe("private, no-store")
      expect((await call("GET", `/api/v1/blog/posts/${path}`, { as: editor })).status).toBe(200)
    }
    const forged = await call("GET", `/api/v1/blog/posts/${post.id}`, {
      headers: { authorization: "Bearer abc.def.ghi" },
    })
    expect(forged.status).toBe(401)
    expect(forged.headers.get("www-authenticate")).toContain("invalid_token")
    const malformed = await call("GET", `/api/v1/blog/posts/${post.id}`, { headers: { authorization: "Basic eA==" } })
    expect(malformed.status).toBe(401)
  })

  it("answers If-None-Match with 304 while the version is current, 200 with the new ETag after a change", async () => {
    const post = await create(alice, { title: "Cached" })
    await publish(alice, post.id)
    const first = await call("GET", `/api/v1/blog/posts/${post.slug}`)
    expect(first.status).toBe(200)
    const etag = first.headers.get("etag")!
    expect(etag).toBe('"2"')
    const cached = await call("GET", `/api/v1/blog/posts/${post.slug}`, { headers: { "if-none-match": etag } })
    expect(cached.status).toBe(304)
    expect(cached.headers.get("etag")).toBe(etag)
    expect(cached.body).toBe("")
    // Weak comparison for If-None-Match; a list matches any of its tags.
    expect((await call("GET", `/api/v1/blog/posts/${post.id}`, { headers: { "if-none-match": 'W/"2"' } })).status).toBe(
      304,
    )
    expect(
      (await call("GET", `/api/v1/blog/posts/${post.id}`, { headers: { "if-none-match": '"9", "2"' } })).status,
    ).toBe(304)
    await call("PATCH", `/api/v1/blog/posts/${post.id}`, { as: alice, body: { excerpt: "changed" } })
    const fresh = await call("GET", `/api/v1/blog/posts/${post.slug}`, { headers: { "if-none-match": etag } })
    expect(fresh.status).toBe(200)
    expect(fresh.headers.get("etag")).toBe('"3"')
  })

  it("lists published posts newest first, every one exactly once across cursor pages, with tag and author filters", async () => {
    const tag = `t${randomUUID().slice(0, 8)}`
    const author = randomUUID()
    const listed = await startBlog({ grants: { [author]: ["blog.post.create", "blog.post.publish"] }, schema })
    try {
      const as = await listed.as(author)
      const ids: Array<string> = []
      for (let i = 0; i < 7; i++) {
        const created = await fetch(`${listed.url}/api/v1/blog/posts`, {
          method: "POST",
          headers: { ...as, "content-type": "application/json" },
          body: JSON.stringify({ title: `Listed ${i}`, tags: i % 2 === 0 ? [tag, "even"] : [tag] }),
        })
        const post = (await created.json()) as Post
        await fetch(`${listed.url}/api/v1/blog/posts/${post.id}/publish`, {
          method: "POST",
          headers: { ...as, "content-type": "application/json" },
          body: "{}",
        })
        ids.push(post.id)
      }
      // An unpublished one of the same author and tag is never listed.
      await create(alice, { title: "Unlisted", tags: [tag] })
      const seen: Array<string> = []
      let cursor: string | null = null
      let pages = 0
      do {
        const page = await call("GET", `/api/v1/blog/posts?tag=${tag}&limit=3${cursor ? `&cursor=${cursor}` : ""}`)
        expect(page.status).toBe(200)
        seen.push(...page.body.items.map((p) => p.id))
        cursor = page.body.nextCursor
        pages++
      } while (cursor)
      expect(pages).toBe(3)
      expect(seen).toEqual([...ids].reverse())
      const byAuthor = await call("GET", `/api/v1/blog/posts?authorId=${author}&limit=100`)
      expect(byAuthor.body.items.map((p) => p.id).sort()).toEqual([...ids].sort())
      const both = await call("GET", `/api/v1/blog/posts?authorId=${author}&tag=even&limit=100`)
      expect(both.body.items).toHaveLength(4)
      const tags = await call("GET", "/api/v1/blog/tags")
      const items = (tags.body as unknown as { items: Array<{ tag: string; count: number }> }).items
      expect(items.find((t) => t.tag === tag)).toEqual({ tag, count: 7 })
    } finally {
      await listed.close()
    }
  })

  it("lists the caller's own posts in any status, or one, newest first", async () => {
    const author = randomUUID()
    const own = await startBlog({ grants: { [author]: ["blog.post.create", "blog.post.publish"] }, schema })
    try {
      const as = await own.as(author)
      const make = async (title: string) =>
        (await (
          await fetch(`${own.url}/api/v1/blog/posts`, {
            method: "POST",
            headers: { ...as, "content-type": "application/json" },
            body: JSON.stringify({ title }),
          })
        ).json()) as Post
      const first = await make("Mine 1")
      const second = await make("Mine 2")
      await fetch(`${own.url}/api/v1/blog/posts/${second.id}/publish`, {
        method: "POST",
        headers: { ...as, "content-type": "application/json" },
        body: "{}",
      })
      const all = (await (await fetch(`${own.url}/api/v1/blog/me/posts`, { headers: as })).json()) as Page
      expect(all.items.map((p) => p.id)).toEqual([second.id, first.id])
      const drafts = (await (
        await fetch(`${own.url}/api/v1/blog/me/posts?status=draft`, { headers: as })
      ).json()) as Page
      expect(drafts.items.map((p) => p.id)).toEqual([first.id])
      const unknown = await fetch(`${own.url}/api/v1/blog/me/posts?status=lost`, { headers: as })
      expect(unknown.status).toBe(400)
    } finally {
      await own.close()
    }
  })

  it("searches title, excerpt and body, ranked title > excerpt > body, with cursor pages over the ranking", async () => {
    const word = `zebra${randomUUID().slice(0, 6)}`
    const inBody = await create(alice, { title: "Third", body: `A long text that mentions ${word} once.` })
    const inExcerpt = await create(alice, { title: "Second", excerpt: `About ${word}` })
    const inTitle = await create(alice, { title: `All about ${word}` })
    const hidden = await create(alice, { title: `Draft ${word}` })
    for (const post of [inBody, inExcerpt, inTitle]) await publish(alice, post.id)
    const ranked = await call("GET", `/api/v1/blog/posts?q=${word}`)
    expect(ranked.status).toBe(200)
    expect(ranked.body.items.map((p) => p.id)).toEqual([inTitle.id, inExcerpt.id, inBody.id])
    expect(ranked.body.items.map((p) => p.id)).not.toContain(hidden.id)
    // The same ranking one per page.
    const seen: Array<string> = []
    let cursor: string | null = null
    do {
      const page = await call("GET", `/api/v1/blog/posts?q=${word}&limit=1${cursor ? `&cursor=${cursor}` : ""}`)
      expect(page.status).toBe(200)
      seen.push(...page.body.items.map((p) => p.id))
      cursor = page.body.nextCursor
    } while (cursor)
    expect(seen).toEqual([inTitle.id, inExcerpt.id, inBody.id])
    // Web-search syntax: stemming (english), exclusion, phrases.
    expect(
      (await call("GET", `/api/v1/blog/posts?q=${encodeURIComponent(`${word} mentions`)}`)).body.items,
    ).toHaveLength(1)
    const without = await call("GET", `/api/v1/blog/posts?q=${encodeURIComponent(`${word} -mention`)}`)
    expect(without.body.items.map((p) => p.id).sort()).toEqual([inTitle.id, inExcerpt.id].sort())
    expect((await call("GET", `/api/v1/blog/posts?q=${encodeURIComponent('"about zebra"')}`)).status).toBe(200)
  })

  it("serves an Atom feed of the latest published posts that parses and has RFC 4287's required elements", async () => {
    const post = await create(alice, { title: "Feed <&> item", excerpt: "x & y", body: "**bold**" })
    await publish(alice, post.id)
    const res = await fetch(`${blog.url}/api/v1/blog/feed.xml`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toBe("application/atom+xml; charset=utf-8")
    const xml = await res.text()
    expect(XMLValidator.validate(xml)).toBe(true)
    const { feed } = new XMLParser({
      ignoreAttributes: false,
      attributeNamePrefix: "@_",
      isArray: (n) => n === "entry",
    }).parse(xml)
    for (const element of ["id", "title", "updated", "link"]) expect(feed[element]).toBeDefined()
    expect(feed.link["@_href"]).toBe("https://blog.example/api/v1/blog/feed.xml")
    const entry = feed.entry.find((e: { id: string }) => e.id === `urn:uuid:${post.id}`)
    expect(entry.title["#text"]).toBe("Feed <&> item")
    expect(entry.author.name).toBe(alice)
    expect(entry.content["#text"]).toBe("<p><strong>bold</strong></p>")
    expect(entry.link["@_href"]).toBe(`https://blog.example/api/v1/blog/posts/${post.slug}`)
  })
})

describe("scheduled publishing", () => {
  it("publishes now when publish is sent without a body", async () => {
    const post = await create(alice, { title: "No body" })
    const res = await fetch(`${blog.url}/api/v1/blog/posts/${post.id}/publish`, {
      method: "POST",
      headers: headers[alice],
    })
    expect(res.status, await res.clone().text()).toBe(200)
    expect(((await res.json()) as Post).status).toBe("published")
  })

  it("sweeps a scheduled post whose job never ran: published once by the overdue sweep, not again", async () => {
    const post = await create(alice, { title: "Lost job" })
    // Scheduled in the past with no job behind it (as if its job had failed for good).
    await sql(
      `UPDATE ${schema}.posts SET status = 'scheduled', publish_at = now() - interval '1 minute' WHERE id = $1`,
      [post.id],
    )
    const sweep = () =>
      Effect.runPromise(
        Effect.flatMap(Effect.service(Posts), (posts) => posts.publishOverdue()).pipe(
          Effect.provideContext(blog.running.context),
        ),
      )
    expect(await sweep()).toBeGreaterThanOrEqual(1)
    expect((await call("GET", `/api/v1/blog/posts/${post.id}`)).body.status).toBe("published")
    await sweep()
    expect(await eventsOf(post.id, "blog.post.published")).toHaveLength(1)
  })

  it("publishes a scheduled post within 5 s of publishAt, exactly once, also when rescheduled", async () => {
    const post = await create(alice, { title: "Scheduled" })
    const first = new Date(Date.now() + 2_000).toISOString()
    const scheduled = await publish(alice, post.id, { publishAt: first })
    expect(scheduled).toMatchObject({ status: "scheduled", publishAt: first, publishedAt: null })
    // Moved later: the first job finds the post scheduled for another time and leaves it.
    const publishAt = new Date(Date.now() + 4_000).toISOString()
    expect((await publish(alice, post.id, { publishAt })).publishAt).toBe(publishAt)
    expect((await call("GET", `/api/v1/blog/posts/${post.id}`)).status).toBe(404)
    const deadline = Date.parse(publishAt) + 20_000
    let published: Post | undefined
    while (Date.now() < deadline) {
      const res = await call("GET", `/api/v1/blog/posts/${post.id}`)
      if (res.status === 200) {
        published = res.body as Post
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(published?.status).toBe("published")
    const lag = Date.parse(published!.publishedAt!) - Date.parse(publishAt)
    expect(lag).toBeGreaterThanOrEqual(0)
    expect(lag).toBeLessThan(5_000)
    // Past both jobs' times: still exactly one published event.
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(await eventsOf(post.id, "blog.post.published")).toHaveLength(1)
  }, 40_000)
})

describe("bad input is a 4xx naming the field, never a 5xx", () => {
  const long = (n: number) => "x".repeat(n)
  it.each([
    ["an empty title", { title: "" }, "title"],
    ["a blank title", { title: "   " }, "title"],
    ["a title over 200 characters", { title: long(201) }, "title"],
    ["a control character in the title", { title: "a\u0001b" }, "title"],
    ["a NUL in the body", { title: "ok", body: "nul \u0000" }, "body"],
    ["a body over 100,000 characters", { title: "ok", body: long(100_001) }, "body"],
    ["an excerpt over 500 characters", { title: "ok", excerpt: long(501) }, "excerpt"],
    ["a slug with spaces and capitals", { title: "ok", slug: "Not A Slug" }, "slug"],
    ["a slug over 120 characters", { title: "ok", slug: long(121) }, "slug"],
    ["a slug shaped like a post id", { title: "ok", slug: randomUUID() }, "slug"],
    ["a tag with capitals", { title: "ok", tags: ["UPPER"] }, "tags.0"],
    ["a repeated tag", { title: "ok", tags: ["a", "a"] }, "tags"],
    ["eleven tags", { title: "ok", tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }, "tags"],
    ["an unknown field", { title: "ok", status: "published" }, "status"],
    ["a title that is a number", { title: 5 }, "title"],
  ])("creating with %s → 400 naming %s", async (_case, body, field) => {
    const res = await call("POST", "/api/v1/blog/posts", { as: alice, body })
    expect(res.status).toBe(400)
    expect(res.body.code).toBe("validation_failed")
    expect(res.body.errors?.map((e) => e.path)).toContain(field)
  })

  it("refuses bad ids, slugs, cursors, queries, dates and headers with 400", async () => {
    const post = await create(alice, { title: "Target" })
    const cases: Array<[string, string, { body?: unknown; headers?: Record<string, string> }, string]> = [
      ["PATCH", "/api/v1/blog/posts/not-a-uuid", { body: {} }, "params.id"],
      ["DELETE", "/api/v1/blog/posts/123", {}, "params.id"],
      ["GET", "/api/v1/blog/posts/Bad_Slug!", {}, "params.id"],
      ["GET", `/api/v1/blog/posts/${long(121)}`, {}, "params.id"],
      ["GET", "/api/v1/blog/posts?cursor=garbage", {}, "query.cursor"],
      [
        "GET",
        `/api/v1/blog/posts?cursor=${Buffer.from(JSON.stringify({ at: "x'; DROP TABLE posts", id: "y" })).toString("base64url")}`,
        {},
        "query.cursor",
      ],
      // A time cursor is not a ranked one, nor the other way round.
      [
        "GET",
        `/api/v1/blog/posts?q=a&cursor=${Buffer.from(JSON.stringify({ at: "2030-01-01T00:00:00.000Z", id: post.id })).toString("base64url")}`,
        {},
        "query.cursor",
      ],
      [
        "GET",
        `/api/v1/blog/posts?cursor=${Buffer.from(JSON.stringify({ at: "0.5", id: post.id })).toString("base64url")}`,
        {},
        "query.cursor",
      ],
      ["GET", "/api/v1/blog/posts?q=", {}, "query.q"],
      ["GET", `/api/v1/blog/posts?q=${long(201)}`, {}, "query.q"],
      ["GET", "/api/v1/blog/posts?authorId=nobody", {}, "query.authorId"],
      ["GET", "/api/v1/blog/posts?tag=Not%20a%20tag", {}, "query.tag"],
      ["GET", "/api/v1/blog/posts?limit=0", {}, "query.limit"],
      ["GET", "/api/v1/blog/posts?limit=101", {}, "query.limit"],
      ["POST", `/api/v1/blog/posts/${post.id}/publish`, { body: { publishAt: "tomorrow" } }, "publishAt"],
      ["POST", `/api/v1/blog/posts/${post.id}/publish`, { body: { publishAt: "2030-02-30T00:00:00Z" } }, "publishAt"],
      [
        "POST",
        `/api/v1/blog/posts/${post.id}/publish`,
        { body: { publishAt: "2030-01-01T00:00:00+25:00" } },
        "publishAt",
      ],
      ["PATCH", `/api/v1/blog/posts/${post.id}`, { body: {}, headers: { "if-match": "7" } }, "headers.if-match"],
      ["GET", `/api/v1/blog/posts/${post.id}`, { headers: { "if-none-match": "nonsense" } }, "headers.if-none-match"],
      [
        "POST",
        "/api/v1/blog/posts",
        { body: { title: "x" }, headers: { "idempotency-key": "a b" } },
        "Idempotency-Key",
      ],
    ]
    for (const [method, path, options, field] of cases) {
      const res = await call(method, path, { as: alice, ...options })
      expect(res.status, `${method} ${path} ${JSON.stringify(res.body)}`).toBe(400)
      expect(
        res.body.errors?.map((e) => e.path),
        `${method} ${path}`,
      ).toContain(field)
    }
  })

  it("refuses a body that is not JSON and an unknown route or method with a problem", async () => {
    const res = await fetch(`${blog.url}/api/v1/blog/posts`, {
      method: "POST",
      headers: { ...headers[alice], "content-type": "application/json" },
      body: "{not json",
    })
    expect(res.status).toBe(400)
    const wrong = await fetch(`${blog.url}/api/v1/blog/tags`, { method: "DELETE" })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get("content-type")).toContain("application/problem+json")
  })
})

describe("contract", () => {
  it("publishes the posts' routes of the Blog table in its OpenAPI document, open reads without security", async () => {
    const document = (await (await fetch(`${blog.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { security?: unknown }>>
    }
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining([
        "/api/v1/blog/feed.xml",
        "/api/v1/blog/me/posts",
        "/api/v1/blog/posts",
        "/api/v1/blog/posts/{id}",
        "/api/v1/blog/posts/{id}/publish",
        "/api/v1/blog/posts/{id}/unpublish",
        "/api/v1/blog/tags",
      ]),
    )
    expect(document.paths["/api/v1/blog/posts"]?.get?.security ?? []).toEqual([])
    expect(document.paths["/api/v1/blog/posts"]?.post?.security).not.toEqual([])
  })
})
