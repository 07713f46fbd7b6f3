import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { startIssuer, type TokenIssuer } from "../authz/testing/authzHarness.ts"
import { type BlogUnderTest, blogEnv, freshBlogSchema, startBlog } from "./testing/blogApp.ts"

// The contract's promise for scheduled posts: published within 5 s of publishAt, exactly once, also when the function
// that scheduled it is killed (SIGKILL: no shutdown, nothing flushed) before the time comes and another instance runs.

const author = randomUUID()
const grants = { [author]: ["blog.post.create", "blog.post.publish"] }
let issuer: TokenIssuer

beforeAll(async () => {
  issuer = await startIssuer()
}, 30_000)
afterAll(() => issuer?.close())

const until = async <A>(what: string, check: () => Promise<A | undefined>, timeoutMs: number): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = await check()
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

// Blog's app in a child process, until it is killed.
const spawnBlog = async (schema: string) => {
  const { KAFKA_BROKERS: _, ...env } = process.env
  const child = spawn(process.execPath, [join(import.meta.dirname, "testing", "blogProcess.ts")], {
    env: {
      ...env,
      LOG_LEVEL: "warn",
      ...(blogEnv(schema, issuer.jwksUrl.href) as Record<string, string>),
      BLOG_TEST_GRANTS: JSON.stringify(grants),
    },
    stdio: ["ignore", "pipe", "inherit"],
  })
  let output = ""
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const url = await until("the child blog to listen", async () => /listening (\S+)/.exec(output)?.[1], 60_000)
  return { child, url }
}

describe("scheduled publishing survives a kill", () => {
  let child: ChildProcess | undefined
  let survivor: BlogUnderTest | undefined
  afterAll(async () => {
    child?.kill("SIGKILL")
    await survivor?.close()
  })

  it("a post scheduled by a process killed with SIGKILL is published by another within 5 s, exactly once", async () => {
    const schema = freshBlogSchema()
    const first = await spawnBlog(schema)
    child = first.child
    const headers = {
      authorization: `Bearer ${await issuer.issue(author)}`,
      "content-type": "application/json",
    }
    const created = await fetch(`${first.url}/api/v1/blog/posts`, {
      method: "POST",
      headers,
      body: JSON.stringify({ title: "Survives a kill" }),
    })
    expect(created.status).toBe(201)
    const post = (await created.json()) as { id: string }
    const publishAt = new Date(Date.now() + 8_000).toISOString()
    const scheduled = await fetch(`${first.url}/api/v1/blog/posts/${post.id}/publish`, {
      method: "POST",
      headers,
      body: JSON.stringify({ publishAt }),
    })
    expect(scheduled.status).toBe(200)
    expect(((await scheduled.json()) as { status: string }).status).toBe("scheduled")

    child.kill("SIGKILL")
    await new Promise((resolve) => child!.once("exit", resolve))
    const [row] = await sql(`SELECT status FROM ${schema}.posts WHERE id = $1`, [post.id])
    expect(row.status).toBe("scheduled")

    // Another instance of the function on the same database.
    survivor = await startBlog({ grants, schema, issuer })
    const publishedAt = await until(
      "the post to be published",
      async () => {
        const [now] = await sql(`SELECT status, published_at FROM ${schema}.posts WHERE id = $1`, [post.id])
        return now.status === "published" ? (now.published_at as Date) : undefined
      },
      Date.parse(publishAt) - Date.now() + 30_000,
    )
    const lag = publishedAt.getTime() - Date.parse(publishAt)
    expect(lag).toBeGreaterThanOrEqual(0)
    expect(lag).toBeLessThan(5_000)
    // A while later (a retried or duplicated job, the overdue sweep): still one publication.
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const events = await sql(
      `SELECT count(*)::int AS n FROM ${schema}.outbox WHERE key = $1 AND event->>'type' = 'blog.post.published'`,
      [post.id],
    )
    expect(events[0].n).toBe(1)
    const read = await fetch(`${survivor.url}/api/v1/blog/posts/${post.id}`)
    expect(read.status).toBe(200)
    console.log(`scheduled publish after SIGKILL: published ${lag} ms after publishAt`)
  }, 120_000)
})
