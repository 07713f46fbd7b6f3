import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import { eventually } from "../../shared/testing/harness.ts"

/**
 * The blog's story through the gateway, as a writer holding every permission (`token`) and an anonymous reader: a draft
 * created under an Idempotency-Key (a repeat is the same post), hidden from readers; a stale If-Match refused (412),
 * a current one accepted; published, then read anonymously, with If-None-Match (304); found by search, in the tags,
 * the Atom feed and the writer's own list; a post scheduled 2 s ahead published by the blog's jobs; deleted; and the
 * audit log holding blog's events.
 */
export const runBlogFlow = async (url: string, token: string) => {
  const call = async (
    method: string,
    path: string,
    options: { auth?: boolean; body?: unknown; headers?: Record<string, string> } = {},
  ) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(options.auth ? { authorization: `Bearer ${token}` } : {}),
        ...(options.body === undefined ? {} : { "content-type": "application/json" }),
        ...options.headers,
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    })
    const text = await res.text()
    const json = (res.headers.get("content-type") ?? "").includes("json") && text !== ""
    return { status: res.status, headers: res.headers, text, body: json ? JSON.parse(text) : undefined }
  }

  const word = `quokka${randomUUID().slice(0, 6)}`
  const key = { "idempotency-key": randomUUID() }
  const draft = { title: `Hello ${word}`, body: `Posted through the *gateway* about ${word}.`, tags: ["e2e"] }
  const created = await call("POST", "/api/v1/blog/posts", { auth: true, body: draft, headers: key })
  expect(created.status, created.text).toBe(201)
  const post = created.body as { id: string; slug: string; version: number }
  expect(created.headers.get("location")).toBe(`/api/v1/blog/posts/${post.id}`)
  const repeated = await call("POST", "/api/v1/blog/posts", { auth: true, body: draft, headers: key })
  expect(repeated.body.id).toBe(post.id)

  expect((await call("GET", `/api/v1/blog/posts/${post.slug}`)).status).toBe(404)
  expect((await call("GET", `/api/v1/blog/posts/${post.slug}`, { auth: true })).headers.get("etag")).toBe('"1"')
  const stale = await call("PATCH", `/api/v1/blog/posts/${post.id}`, {
    auth: true,
    body: { excerpt: "stale" },
    headers: { "if-match": '"9"' },
  })
  expect(stale.status).toBe(412)
  const changed = await call("PATCH", `/api/v1/blog/posts/${post.id}`, {
    auth: true,
    body: { excerpt: `All about ${word}` },
    headers: { "if-match": '"1"' },
  })
  expect(changed.status, changed.text).toBe(200)

  const published = await call("POST", `/api/v1/blog/posts/${post.id}/publish`, { auth: true, body: {} })
  expect(published.body?.status, published.text).toBe("published")
  const read = await call("GET", `/api/v1/blog/posts/${post.slug}`)
  expect(read.status).toBe(200)
  expect(read.body.html).toContain("<em>gateway</em>")
  const etag = read.headers.get("etag")!
  expect((await call("GET", `/api/v1/blog/posts/${post.slug}`, { headers: { "if-none-match": etag } })).status).toBe(
    304,
  )

  const found = await call("GET", `/api/v1/blog/posts?q=${word}`)
  expect(found.body.items.map((p: { id: string }) => p.id)).toEqual([post.id])
  const tags = await call("GET", "/api/v1/blog/tags")
  expect(tags.body.items.find((t: { tag: string }) => t.tag === "e2e")?.count).toBeGreaterThanOrEqual(1)
  const feed = await call("GET", "/api/v1/blog/feed.xml")
  expect(feed.headers.get("content-type")).toBe("application/atom+xml; charset=utf-8")
  expect(feed.text).toContain(`<id>urn:uuid:${post.id}</id>`)
  const mine = await call("GET", "/api/v1/blog/me/posts?status=published", { auth: true })
  expect(mine.body.items.map((p: { id: string }) => p.id)).toContain(post.id)

  const later = await call("POST", "/api/v1/blog/posts", { auth: true, body: { title: `Later ${word}` } })
  const publishAt = new Date(Date.now() + 2_000).toISOString()
  const scheduled = await call("POST", `/api/v1/blog/posts/${later.body.id}/publish`, {
    auth: true,
    body: { publishAt },
  })
  expect(scheduled.body?.status, scheduled.text).toBe("scheduled")
  await eventually(
    "the scheduled post to be published",
    async () => (await call("GET", `/api/v1/blog/posts/${later.body.id}`)).status === 200,
    15_000,
  )

  const removed = await call("DELETE", `/api/v1/blog/posts/${post.id}`, {
    auth: true,
    headers: { "if-match": `"${published.body.version}"` },
  })
  expect(removed.status).toBe(204)
  expect((await call("GET", `/api/v1/blog/posts/${post.id}`)).status).toBe(404)

  // Audit records every producer's events: blog's too.
  await eventually(
    "blog's events in the audit log",
    async () => {
      const events = await call("GET", `/api/v1/audit/events?targetId=${post.id}&limit=100`, { auth: true })
      const actions = new Set((events.body?.items ?? []).map((e: { action: string }) => e.action))
      return ["blog.post.created", "blog.post.updated", "blog.post.published", "blog.post.deleted"].every((a) =>
        actions.has(a),
      )
    },
    20_000,
  )
}
