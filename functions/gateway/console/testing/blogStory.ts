// The Blog screen's story in a real browser, for any test that has a console open and signed in as an author (an
// admin): write a draft, edit it, attach a PNG through the page's file input, publish it, and check through the public
// API (no token) that the post is out with its attachment ready. Screenshots 05-… to 08-….
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expect } from "vitest"
import type { ConsoleBrowser } from "./browser.ts"

/** A 1×1 PNG: an allowed attachment type under blog's defaults. */
export const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  "base64",
)

interface PublicPost {
  readonly slug: string
  readonly title: string
  readonly status: string
  readonly tags: ReadonlyArray<string>
  readonly html: string
  readonly attachments: ReadonlyArray<{ filename: string; size: number; status: string; url: string | null }>
}

/** `url` is the gateway's origin; `token` the signed-in author's access token (for checks beside the page). */
export const blogStory = async (view: ConsoleBrowser, url: string, token: string) => {
  const { page } = view
  const tag = randomUUID().slice(0, 8)
  const title = `Console story ${tag}`
  const slug = `console-story-${tag}`

  await page.click("a[href='#/blog']")
  await view.waitForText("caption", "Your posts")
  const create = "form[aria-label='New post']"
  await view.fill("Title", title, create)
  await view.fill("Excerpt", "Written in the console", create)
  await view.fill("Tags", "console, story", create)
  await view.fill("Body", "# Hello\n\nFrom the **console**.", create)
  await page.click(`${create} button[type=submit]`)
  await view.waitForText("table", title)
  await view.shot("05-blog")

  // Edit: a new title and slug; the save answers version 2.
  await page.click(`button[aria-label="Edit “${title}”"]`)
  await view.waitForText("section h2", `Edit “${title}”`)
  const edit = "form[aria-label='Edit post']"
  await view.fill("Title", `${title} (edited)`, edit)
  await view.fill("Slug", slug, edit)
  await page.click(`${edit} button[type=submit]`)
  await view.waitForText("p[role=status]", "Version 2")
  await view.waitForText("table", slug)

  // An attachment through the page's file input: declared, sent to the presigned upload, completed.
  const dir = mkdtempSync(join(tmpdir(), "blog-story-"))
  try {
    const file = join(dir, `pixel-${tag}.png`)
    writeFileSync(file, PNG)
    // This file is checked without the DOM's types: the handle as what it is, a file input.
    const input = (await page.$("form[aria-label='Upload an attachment'] input[type=file]")) as unknown as {
      uploadFile(...paths: Array<string>): Promise<void>
    } | null
    expect(input).not.toBeNull()
    await input!.uploadFile(file)
    await page.click("form[aria-label='Upload an attachment'] button[type=submit]")
    const row = await view.waitForText("section[aria-label=Attachments] tbody tr", `pixel-${tag}.png`, 20_000)
    expect(row).toContain("ready")
    expect(row).toContain(`${PNG.length} B`)
    await page.waitForSelector(`section[aria-label=Attachments] a[href*='/api/v1/blog/posts/']`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  await view.shot("06-blog-edit")

  await view.clickText("button", "Publish now")
  await view.waitForText(".blog-publishing", "published")
  await view.waitForText("table", "published")
  await view.shot("07-blog-published")

  // The public API (no token): the post is out, as edited, with its attachment ready.
  const res = await fetch(`${url}/api/v1/blog/posts/${slug}`)
  expect(res.status).toBe(200)
  const post = (await res.json()) as PublicPost
  expect(post).toMatchObject({ slug, title: `${title} (edited)`, status: "published", tags: ["console", "story"] })
  expect(post.html).toContain("<strong>console</strong>")
  expect(post.attachments).toEqual([
    expect.objectContaining({ filename: `pixel-${tag}.png`, size: PNG.length, status: "ready" }),
  ])
  expect(post.attachments[0]?.url).toEqual(expect.any(String))
  // The author's own list (with the token) agrees: one post with this slug, published.
  const mine = await fetch(`${url}/api/v1/blog/me/posts?status=published`, {
    headers: { authorization: `Bearer ${token}` },
  })
  const items = ((await mine.json()) as { items: ReadonlyArray<PublicPost> }).items.filter((p) => p.slug === slug)
  expect(items.map((p) => p.status)).toEqual(["published"])
  return { slug, title: post.title }
}
