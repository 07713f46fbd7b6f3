import { randomUUID } from "node:crypto"
import { mkdtemp, readdir, rm } from "node:fs/promises"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { HeadObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { ConfigProvider, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { startIssuer, type TokenIssuer } from "../authz/testing/authzHarness.ts"
import { app } from "./App.ts"
import { CLEANUP_JOB, MAX_ATTACHMENTS } from "./Attachments.ts"
import { loadConfig } from "./Config.ts"
import { type BlogUnderTest, freshBlogSchema, startBlog } from "./testing/blogApp.ts"

// Attachments on the real servers: the blog on Postgres with moto's S3 (the whole flow, with a real multipart form
// POST to the presigned URL), and the blog on the embedded filesystem store, whose upload URL is the blog's own route.

const alice = randomUUID() // an author
const bob = randomUUID() // another author
const editor = randomUUID() // changes anyone's posts
const reader = randomUUID() // holds nothing
const grants = {
  [alice]: ["blog.post.create", "blog.post.publish"],
  [bob]: ["blog.post.create", "blog.post.publish"],
  [editor]: ["blog.post.read.any", "blog.post.update.any"],
}

type Attachment = {
  id: string
  filename: string
  contentType: string
  size: number
  status: "pending" | "ready"
  url: string | null
}
type Upload = { method: string; url: string; fields: Record<string, string>; expiresAt: string }
type Created = { attachment: Attachment; upload: Upload }
type Problem = { status: number; code: string; detail?: string; errors?: Array<{ path: string; message: string }> }
/** An answer's JSON: an attachment, a created attachment with its upload, or a problem. */
type Answer = Partial<Attachment> & Partial<Created> & Partial<Omit<Problem, "status">>

const env = (name: string) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: run the tests through vitest (its global setup starts moto)`)
  return value
}

const bytes = (n: number, seed = 0) => Uint8Array.from({ length: n }, (_, i) => (i + seed) % 251)

/** Sends an upload as a browser form would: every field, then the file, last, named `file`. */
const postForm = (upload: Pick<Upload, "url" | "fields">, file: Uint8Array, fields: Record<string, string> = {}) => {
  const form = new FormData()
  for (const [name, value] of Object.entries({ ...upload.fields, ...fields })) form.append(name, value)
  form.append("file", new Blob([file]), "upload.bin")
  return fetch(upload.url, { method: "POST", body: form })
}

/** What a server answers on a raw connection to a request no HTTP client would send (the head of its answer). */
const raw = (port: number, request: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(request))
    let answer = ""
    socket.on("data", (chunk) => {
      answer += chunk.toString()
      if (answer.includes("\r\n\r\n")) socket.destroy()
    })
    socket.on("close", () => resolve(answer))
    socket.on("error", reject)
  })

/** A blog under test with an HTTP client for its users. */
const client = (blog: () => BlogUnderTest, base: () => string = () => blog().url) => {
  const headers: Record<string, Record<string, string>> = {}
  const call = async (
    method: string,
    path: string,
    options: { as?: string; body?: unknown; headers?: Record<string, string> } = {},
  ) => {
    if (options.as !== undefined) headers[options.as] ??= await blog().as(options.as)
    const response = await fetch(`${base()}${path}`, {
      method,
      redirect: "manual",
      headers: {
        ...(options.as === undefined ? {} : headers[options.as]),
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
      body: (type.includes("json") && text !== "" ? JSON.parse(text) : {}) as Answer,
    }
  }
  const post = async (as = alice) => {
    const res = await call("POST", "/api/v1/blog/posts", { as, body: { title: `Post ${randomUUID()}` } })
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    return (res.body as unknown as { id: string }).id
  }
  const attach = async (
    postId: string,
    body: Record<string, unknown>,
    as = alice,
    extra: Record<string, string> = {},
  ) => call("POST", `/api/v1/blog/posts/${postId}/attachments`, { as, body, headers: extra })
  const declared = async (postId: string, body: Record<string, unknown>, as = alice) => {
    const res = await attach(postId, body, as)
    expect(res.status, JSON.stringify(res.body)).toBe(201)
    return res.body as Created
  }
  const complete = (postId: string, id: string, as = alice) =>
    call("POST", `/api/v1/blog/posts/${postId}/attachments/${id}/complete`, { as })
  const attachmentsOf = async (postId: string, as = alice) => {
    const res = await call("GET", `/api/v1/blog/posts/${postId}`, { as })
    expect(res.status).toBe(200)
    return (res.body as unknown as { attachments: Array<Attachment> }).attachments
  }
  return { call, post, attach, declared, complete, attachmentsOf }
}

/** Runs blog's cleanup job as its worker would: the handler its app definition declares, on the app's services. */
const runCleanup = (blog: BlogUnderTest) => {
  const job = app.definition.jobs?.[CLEANUP_JOB]
  if (job === undefined) throw new Error(`blog declares no ${CLEANUP_JOB} job`)
  return Effect.runPromise(
    job
      .handler(undefined, { id: randomUUID(), attempt: 1, due: new Date() })
      .pipe(Effect.provideContext(blog.running.context)) as Effect.Effect<void, unknown>,
  )
}

let issuer: TokenIssuer
beforeAll(async () => {
  issuer = await startIssuer()
}, 60_000)
afterAll(() => issuer?.close())

describe("attachments on S3 (moto)", () => {
  const schema = freshBlogSchema()
  let blog: BlogUnderTest
  const s3 = new S3Client({
    endpoint: env("S3_ENDPOINT"),
    region: env("S3_REGION"),
    forcePathStyle: true,
  })
  const stored = async (key: string) => {
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: env("S3_BUCKET"), Key: key }))
      return { size: head.ContentLength, type: head.ContentType }
    } catch (error) {
      if ((error as { name?: string }).name === "NotFound") return undefined
      throw error
    }
  }
  const { call, post, attach, declared, complete, attachmentsOf } = client(() => blog)

  beforeAll(async () => {
    blog = await startBlog({ grants, schema, issuer, env: { BLOG_ATTACHMENT_MAX_BYTES: String(1024 * 1024) } })
  }, 60_000)
  afterAll(async () => {
    await blog?.close()
    s3.destroy()
  })

  it("uploads straight to S3 with a presigned POST, completes, shows it on the post, links to it, deletes it", async () => {
    const postId = await post()
    const file = bytes(2048)
    const { attachment, upload } = await declared(postId, {
      filename: "Grüße.png",
      contentType: "image/png",
      size: file.length,
    })
    expect(attachment).toMatchObject({
      filename: "Grüße.png",
      contentType: "image/png",
      size: 2048,
      status: "pending",
      url: null,
    })
    expect(upload.method).toBe("POST")
    expect(upload.url.startsWith(env("S3_ENDPOINT"))).toBe(true)
    const lasts = Date.parse(upload.expiresAt) - Date.now()
    expect(lasts).toBeGreaterThan(0)
    expect(lasts).toBeLessThanOrEqual(15 * 60 * 1000)
    // The policy pins the key, the type and exactly the declared size (moto does not check it; S3 does).
    const policy = JSON.parse(Buffer.from(upload.fields.Policy ?? "", "base64").toString()) as {
      conditions: Array<unknown>
    }
    const key = upload.fields.key ?? ""
    expect(key).toBe(`blog/posts/${postId}/attachments/${attachment.id}`)
    expect(policy.conditions).toContainEqual({ key })
    expect(policy.conditions).toContainEqual({ "Content-Type": "image/png" })
    expect(policy.conditions).toContainEqual(["content-length-range", 2048, 2048])
    expect((await attachmentsOf(postId)).map((a) => [a.id, a.status])).toEqual([[attachment.id, "pending"]])

    const sent = await postForm(upload, file)
    expect(sent.status).toBe(204)
    expect(await stored(key)).toEqual({ size: 2048, type: "image/png" })

    const ready = await complete(postId, attachment.id)
    expect(ready.status, JSON.stringify(ready.body)).toBe(200)
    const link = `https://blog.example/api/v1/blog/posts/${postId}/attachments/${attachment.id}`
    expect(ready.body).toMatchObject({ id: attachment.id, status: "ready", size: 2048, url: link })
    expect(await attachmentsOf(postId)).toEqual([ready.body])
    // Completing again answers it as it is.
    expect((await complete(postId, attachment.id)).body).toEqual(ready.body)

    // The link redirects to a short-lived download URL of the file.
    const followed = await call("GET", new URL(link).pathname)
    expect(followed.status).toBe(302)
    expect(followed.headers.get("cache-control")).toBe("no-store")
    const download = await fetch(followed.headers.get("location") ?? "")
    expect(download.status).toBe(200)
    expect(download.headers.get("content-type")).toBe("image/png")
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(file)

    const removed = await call("DELETE", `/api/v1/blog/posts/${postId}/attachments/${attachment.id}`, { as: alice })
    expect(removed.status).toBe(204)
    expect(await stored(key)).toBeUndefined()
    expect(await attachmentsOf(postId)).toEqual([])
    expect((await call("GET", new URL(link).pathname)).status).toBe(404)
    expect((await complete(postId, attachment.id)).status).toBe(404)
  })

  it("moves the post to a new version on each change of its attachments: its ETag and an old If-Match are stale", async () => {
    const postId = await post()
    const read = (etag?: string) =>
      call("GET", `/api/v1/blog/posts/${postId}`, {
        as: alice,
        headers: etag === undefined ? {} : { "if-none-match": etag },
      })
    const first = await read()
    const etag = first.headers.get("etag") ?? ""
    expect(etag).toBe('"1"')
    expect((await read(etag)).status).toBe(304)
    const file = bytes(64)
    const { attachment, upload } = await declared(postId, { filename: "a.png", contentType: "image/png", size: 64 })
    // Declared (pending): the post shows it, so a revalidation with the old tag gets the new representation.
    const declaredPost = await read(etag)
    expect(declaredPost.status).toBe(200)
    expect(declaredPost.headers.get("etag")).toBe('"2"')
    expect((await postForm(upload, file)).status).toBe(204)
    expect((await complete(postId, attachment.id)).status).toBe(200)
    // Completing again changes nothing: the same version.
    expect((await complete(postId, attachment.id)).status).toBe(200)
    const completed = await read('"2"')
    expect(completed.status).toBe(200)
    expect(completed.headers.get("etag")).toBe('"3"')
    // An edit based on a version from before the file is refused, not applied over a representation it never saw.
    const stale = await call("PATCH", `/api/v1/blog/posts/${postId}`, {
      as: alice,
      body: { title: "Stale" },
      headers: { "if-match": etag },
    })
    expect(stale.status).toBe(412)
    expect(
      (await call("DELETE", `/api/v1/blog/posts/${postId}/attachments/${attachment.id}`, { as: alice })).status,
    ).toBe(204)
    const removed = await read('"3"')
    expect(removed.status).toBe(200)
    expect(removed.headers.get("etag")).toBe('"4"')
    expect((removed.body as unknown as { attachments: Array<unknown> }).attachments).toEqual([])
  })

  it("complete: a stored object of another size or type is 422 and deleted; nothing stored yet is 409", async () => {
    const postId = await post()
    const early = await declared(postId, { filename: "a.png", contentType: "image/png", size: 100 })
    const nothing = await complete(postId, early.attachment.id)
    expect([nothing.status, nothing.body.code]).toEqual([409, "conflict"])

    // moto stores what the form carries, so the check at complete is what refuses it here.
    const larger = await declared(postId, { filename: "b.png", contentType: "image/png", size: 100 })
    expect((await postForm(larger.upload, bytes(150))).status).toBe(204)
    const sized = await complete(postId, larger.attachment.id)
    expect([sized.status, sized.body.code]).toEqual([422, "upload_mismatch"])
    expect(sized.body.detail).toContain("150 bytes stored, 100 declared")
    expect(await stored(larger.upload.fields.key ?? "")).toBeUndefined()

    const typed = await declared(postId, { filename: "c.png", contentType: "image/png", size: 100 })
    expect((await postForm(typed.upload, bytes(100), { "Content-Type": "text/html" })).status).toBe(204)
    const retyped = await complete(postId, typed.attachment.id)
    expect([retyped.status, retyped.body.code]).toEqual([422, "upload_mismatch"])
    expect(await stored(typed.upload.fields.key ?? "")).toBeUndefined()
    // Still pending: it may be uploaded again while its URL lasts.
    expect((await postForm(typed.upload, bytes(100))).status).toBe(204)
    expect((await complete(postId, typed.attachment.id)).body.status).toBe("ready")
  })

  it("may edit the post: the author, an editor with update.any; others 403 (published) or 404 (a draft)", async () => {
    const draft = await post(alice)
    const body = { filename: "x.pdf", contentType: "application/pdf", size: 10 }
    expect((await attach(draft, body, bob)).status).toBe(404)
    expect((await attach(draft, body, reader)).status).toBe(404)
    expect((await attach(draft, body, editor)).status).toBe(201)
    expect((await call("POST", `/api/v1/blog/posts/${draft}/publish`, { as: alice, body: {} })).status).toBe(200)
    const refused = await attach(draft, body, bob)
    expect([refused.status, refused.body.code]).toEqual([403, "forbidden"])
    const version = async () =>
      ((await call("GET", `/api/v1/blog/posts/${draft}`, { as: alice })).body as unknown as { version: number }).version
    const before = await version()
    const { attachment } = await declared(draft, body)
    // The check is the rule of PATCH and writes nothing: the new attachment is the one change, one version more.
    expect(await version()).toBe(before + 1)
    expect((await complete(draft, attachment.id, bob)).status).toBe(403)
    const deleted = await call("DELETE", `/api/v1/blog/posts/${draft}/attachments/${attachment.id}`, { as: reader })
    expect(deleted.status).toBe(403)
    const anonymous = await call("POST", `/api/v1/blog/posts/${draft}/attachments`, { body })
    expect([anonymous.status, anonymous.headers.get("www-authenticate")]).toEqual([401, "Bearer"])
    expect((await attach(randomUUID(), body)).status).toBe(404)
  })

  it("refuses bad input with 400 naming the field: type not allowed, size over the maximum, bad names and ids", async () => {
    const postId = await post()
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ filename: "x.html", contentType: "text/html", size: 10 }, "contentType"],
      [{ filename: "x.png", contentType: "image/png", size: 1024 * 1024 + 1 }, "size"],
      [{ filename: "x.png", contentType: "image/png", size: 0 }, "size"],
      [{ filename: "x.png", contentType: "image/png", size: 1.5 }, "size"],
      [{ filename: "x.png", contentType: "IMAGE/PNG", size: 10 }, "contentType"],
      [{ filename: "   ", contentType: "image/png", size: 10 }, "filename"],
      [{ filename: "a\u0007b.png", contentType: "image/png", size: 10 }, "filename"],
      // NUL is refused by the kernel before any handler, for the whole body.
      [{ filename: "a\u0000b.png", contentType: "image/png", size: 10 }, "body"],
      [{ filename: "x".repeat(256), contentType: "image/png", size: 10 }, "filename"],
      [{ contentType: "image/png", size: 10 }, "filename"],
      [{ filename: "x.png", contentType: "image/png", size: 10, acl: "public-read" }, "acl"],
    ]
    for (const [body, field] of cases) {
      const res = await attach(postId, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      expect(res.body.code).toBe("validation_failed")
      expect(res.body.errors?.map((e) => e.path).join(" "), JSON.stringify(body)).toContain(field)
    }
    expect((await attach("not-a-uuid", { filename: "x.png", contentType: "image/png", size: 10 })).status).toBe(400)
    expect((await complete(postId, "not-a-uuid")).status).toBe(400)
    expect((await complete(postId, randomUUID())).status).toBe(404)
    expect((await call("GET", `/api/v1/blog/posts/${postId}/attachments/${randomUUID()}`)).status).toBe(404)
    expect(await attachmentsOf(postId)).toEqual([])
  })

  it("Idempotency-Key: a repeat answers the same attachment and upload; another body under the key is 422", async () => {
    const postId = await post()
    const body = { filename: "same.gif", contentType: "image/gif", size: 42 }
    const key = { "idempotency-key": randomUUID() }
    const first = await attach(postId, body, alice, key)
    const again = await attach(postId, body, alice, key)
    expect([first.status, again.status]).toEqual([201, 201])
    expect(again.body).toEqual(first.body)
    expect(await attachmentsOf(postId)).toHaveLength(1)
    const other = await attach(postId, { ...body, size: 43 }, alice, key)
    expect([other.status, other.body.code]).toEqual([422, "idempotency_key_reused"])
  })

  it(`a post has at most ${MAX_ATTACHMENTS} attachments (409 after)`, async () => {
    const postId = await post()
    await sql(
      `INSERT INTO ${schema}.attachments
         (id, post_id, filename, content_type, size, status, object_key, created_by, created_at, upload_expires_at)
       SELECT gen_random_uuid(), $1, 'f.png', 'image/png', 1, 'ready', 'blog/filler/' || gen_random_uuid(), $2, now(), now()
       FROM generate_series(1, $3)`,
      [postId, alice, MAX_ATTACHMENTS],
    )
    const over = await attach(postId, { filename: "one.png", contentType: "image/png", size: 1 })
    expect([over.status, over.body.code]).toEqual([409, "conflict"])
  })

  it("the cleanup job removes uploads pending 24 h, deleted ones and a deleted post's, objects first", async () => {
    const postId = await post()
    const upload = async (name: string) => {
      const created = await declared(postId, { filename: name, contentType: "image/webp", size: 64 })
      expect((await postForm(created.upload, bytes(64))).status).toBe(204)
      return created
    }
    const abandoned = await upload("abandoned.webp")
    const recent = await upload("recent.webp")
    const kept = await upload("kept.webp")
    expect((await complete(postId, kept.attachment.id)).status).toBe(200)
    const gonePost = await post()
    const orphan = await declared(gonePost, { filename: "orphan.webp", contentType: "image/webp", size: 64 })
    expect((await postForm(orphan.upload, bytes(64))).status).toBe(204)
    expect((await call("DELETE", `/api/v1/blog/posts/${gonePost}`, { as: alice })).status).toBe(204)

    // 25 hours ago, for the abandoned upload and the deleted post's (whose upload URLs have long expired).
    await sql(
      `UPDATE ${schema}.attachments SET created_at = now() - interval '25 hours',
         upload_expires_at = now() - interval '24 hours' WHERE id = ANY($1::uuid[])`,
      [[abandoned.attachment.id, orphan.attachment.id]],
    )
    await runCleanup(blog)

    const rows = await sql(`SELECT id FROM ${schema}.attachments WHERE id = ANY($1::uuid[])`, [
      [abandoned.attachment.id, recent.attachment.id, kept.attachment.id, orphan.attachment.id],
    ])
    expect(rows.map((r) => r.id).sort()).toEqual([recent.attachment.id, kept.attachment.id].sort())
    expect(await stored(abandoned.upload.fields.key ?? "")).toBeUndefined()
    expect(await stored(orphan.upload.fields.key ?? "")).toBeUndefined()
    expect(await stored(recent.upload.fields.key ?? "")).toEqual({ size: 64, type: "image/webp" })
    expect(await stored(kept.upload.fields.key ?? "")).toEqual({ size: 64, type: "image/webp" })
    expect((await attachmentsOf(postId)).map((a) => a.filename).sort()).toEqual(["kept.webp", "recent.webp"])
  })

  it("a deleted attachment whose upload URL still works is removed again by the job once it has expired", async () => {
    const postId = await post()
    const created = await declared(postId, { filename: "late.png", contentType: "image/png", size: 32 })
    expect(
      (await call("DELETE", `/api/v1/blog/posts/${postId}/attachments/${created.attachment.id}`, { as: alice })).status,
    ).toBe(204)
    // The URL still works: the object arrives after the delete; the attachment stays gone.
    expect((await postForm(created.upload, bytes(32))).status).toBe(204)
    expect(await attachmentsOf(postId)).toEqual([])
    await runCleanup(blog)
    expect(await stored(created.upload.fields.key ?? "")).toEqual({ size: 32, type: "image/png" })
    await sql(`UPDATE ${schema}.attachments SET upload_expires_at = now() - interval '1 second' WHERE id = $1`, [
      created.attachment.id,
    ])
    await runCleanup(blog)
    expect(await stored(created.upload.fields.key ?? "")).toBeUndefined()
    expect(await sql(`SELECT 1 FROM ${schema}.attachments WHERE id = $1`, [created.attachment.id])).toEqual([])
  })
})

describe("attachments on the embedded store (the blog's own upload URL)", () => {
  let blog: BlogUnderTest
  let base: string
  let dir: string
  const { post, declared, complete } = client(
    () => blog,
    () => base,
  )

  beforeAll(async () => {
    dir = await mkdtemp(Path.join(tmpdir(), "blog-blobs-"))
    const port = await freePort()
    base = `http://127.0.0.1:${port}`
    blog = await startBlog({
      grants,
      issuer,
      env: {
        // No S3: the embedded store, whose signed URLs the blog serves at its public URL (here: itself).
        S3_ENDPOINT: undefined,
        S3_BUCKET: undefined,
        BLOB_DIR: dir,
        HTTP_PORT: String(port),
        APP_BASE_URL: base,
        BLOG_ATTACHMENT_MAX_BYTES: String(256 * 1024),
      },
    })
  }, 60_000)
  afterAll(async () => {
    await blog?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it("uploads through the blog's signed URL as to S3, completes, and the link serves the file back", async () => {
    const postId = await post()
    const file = bytes(100_000, 7)
    const { attachment, upload } = await declared(postId, {
      filename: "scan.pdf",
      contentType: "application/pdf",
      size: file.length,
    })
    expect(upload.url.startsWith(`${base}/api/v1/blog/blobs/`)).toBe(true)
    expect(upload.fields).toEqual({
      key: `blog/posts/${postId}/attachments/${attachment.id}`,
      "Content-Type": "application/pdf",
    })
    const sent = await postForm(upload, file)
    expect(sent.status, await sent.text()).toBe(204)
    const ready = await complete(postId, attachment.id)
    expect(ready.body).toMatchObject({
      status: "ready",
      url: `${base}/api/v1/blog/posts/${postId}/attachments/${attachment.id}`,
    })

    const followed = await fetch(ready.body.url ?? "", { redirect: "manual" })
    expect(followed.status).toBe(302)
    const location = followed.headers.get("location") ?? ""
    expect(location.startsWith(`${base}/api/v1/blog/blobs/`)).toBe(true)
    const download = await fetch(location)
    expect(download.status).toBe(200)
    expect(download.headers.get("content-type")).toBe("application/pdf")
    expect(download.headers.get("x-content-type-options")).toBe("nosniff")
    expect(download.headers.get("content-security-policy")).toContain("sandbox")
    expect(new Uint8Array(await download.arrayBuffer())).toEqual(file)
    // The upload URL is not a download URL, nor the reverse.
    expect((await fetch(upload.url)).status).toBe(403)
    expect((await postForm({ url: location, fields: upload.fields }, file)).status).toBe(403)
  })

  it("refuses a wrong type (415), a larger (413) or smaller (400) file, a forged token (403), bad forms (4xx)", async () => {
    const postId = await post()
    const { attachment, upload } = await declared(postId, { filename: "p.png", contentType: "image/png", size: 5000 })
    const problem = async (response: Response) => {
      const body = (await response.json()) as Problem
      expect(response.headers.get("content-type")).toContain("application/problem+json")
      return [response.status, body.code]
    }
    expect(await problem(await postForm(upload, bytes(5000), { "Content-Type": "image/gif" }))).toEqual([
      415,
      "unsupported_media_type",
    ])
    expect(await problem(await postForm(upload, bytes(5001)))).toEqual([413, "payload_too_large"])
    expect(await problem(await postForm(upload, bytes(4999)))).toEqual([400, "bad_request"])
    expect(await problem(await postForm(upload, bytes(5000), { key: "blog/elsewhere.png" }))).toEqual([
      400,
      "bad_request",
    ])
    expect(await problem(await postForm(upload, bytes(5000), { acl: "public-read" }))).toEqual([400, "bad_request"])
    const token = upload.url.slice(upload.url.lastIndexOf("/") + 1)
    const [payload = "", mac = ""] = token.split(".")
    const grant = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>
    const widened = Buffer.from(JSON.stringify({ ...grant, max: 10 ** 9 })).toString("base64url")
    const forged = { ...upload, url: `${base}/api/v1/blog/blobs/${widened}.${mac}` }
    expect(await problem(await postForm(forged, bytes(6000)))).toEqual([403, "forbidden"])
    const malformed = await fetch(`${base}/api/v1/blog/blobs/not-a-token`, { method: "POST", body: new FormData() })
    expect(await problem(malformed)).toEqual([400, "validation_failed"])
    const json = await fetch(upload.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    })
    expect(json.status).toBe(415)
    const noBoundary = await fetch(upload.url, {
      method: "POST",
      headers: { "content-type": "multipart/form-data" },
      body: "garbage",
    })
    expect(noBoundary.status).toBeGreaterThanOrEqual(400)
    expect(noBoundary.status).toBeLessThan(500)
    // A declared body over the route's limit is refused before any of it is read.
    const url = new URL(upload.url)
    const head = await raw(
      Number(url.port),
      `POST ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: multipart/form-data; boundary=x\r\n` +
        `Content-Length: ${200 * 1024 * 1024}\r\n\r\n`,
    )
    expect(head).toMatch(/^HTTP\/1.1 413 /)
    // Nothing was stored by any of these; the right file still goes through.
    expect((await complete(postId, attachment.id)).status).toBe(409)
    expect((await postForm(upload, bytes(5000))).status).toBe(204)
    expect((await complete(postId, attachment.id)).body.status).toBe("ready")
    expect(await readdir(Path.join(dir, "tmp"))).toEqual([])
  })

  it("refuses a file far over the granted size as it streams, and stores nothing", async () => {
    const postId = await post()
    const { attachment, upload } = await declared(postId, { filename: "big.png", contentType: "image/png", size: 1000 })
    const res = await postForm(upload, bytes(20 * 1024 * 1024))
    expect(res.status).toBe(413)
    expect(await readdir(Path.join(dir, "tmp"))).toEqual([])
    expect((await complete(postId, attachment.id)).status).toBe(409)
  })
})

describe("attachments' configuration", () => {
  const problems = (env: Record<string, string>) =>
    Effect.runPromise(
      Effect.flip(loadConfig).pipe(
        Effect.provide(
          ConfigProvider.layer(ConfigProvider.fromEnv({ env: { DATABASE_URL: "postgres://x@h/db", ...env } })),
        ),
        Effect.map((error) => error.problems.join("\n")),
      ),
    )

  it("refuses the embedded store in production (S3_BUCKET named), bad types and sizes, with the other problems", async () => {
    const production = await problems({ NODE_ENV: "production" })
    expect(production).toContain("S3_BUCKET: required in production")
    expect(await problems({ NODE_ENV: "production", S3_BUCKET: "files" })).not.toContain("S3_BUCKET")
    const bad = await problems({
      BLOG_ATTACHMENT_TYPES: "image/png, Text/HTML",
      BLOG_ATTACHMENT_MAX_BYTES: String(200 * 1024 * 1024),
      BLOB_SIGNING_KEY: "short",
      HTTP_PORT: "x",
    })
    for (const key of ["BLOG_ATTACHMENT_TYPES", "BLOG_ATTACHMENT_MAX_BYTES", "BLOB_SIGNING_KEY", "HTTP_PORT"]) {
      expect(bad).toContain(`${key}:`)
    }
    expect(bad).not.toContain("short")
  })
})
