import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NpmStart, startNpmStart } from "../../../e2e/testing/npmStart.ts"
import { freshEmail, PASSWORD, signUp } from "./testing/accounts.ts"
import { blogStory, PNG } from "./testing/blogStory.ts"
import { accessibilityViolations, type ConsoleBrowser, openConsole, pageWidth } from "./testing/browser.ts"

// The console's Blog screen in a real headless Chromium against `npm start` (embedded defaults): the story (write,
// edit, attach, publish), a stale edit's 412, and not one console error, CSP violation or 5xx on the way.
const adminEmail = freshEmail("blog-admin")
let platform: NpmStart
let url: string
let admin: Awaited<ReturnType<typeof signUp>>
let view: ConsoleBrowser
let story: Awaited<ReturnType<typeof blogStory>>

beforeAll(async () => {
  platform = await startNpmStart({
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    RATE_LIMIT_USER_PER_MINUTE: "0",
    RATE_LIMIT_IP_PER_MINUTE: "0",
  })
  url = platform.url
  admin = await signUp(url, adminEmail, "Grace Hopper")
  view = await openConsole(`${url}/console`)
  await view.fill("Email", adminEmail)
  await view.fill("Password", PASSWORD)
  await view.page.click("form[aria-label='Sign in'] button[type=submit]")
  await view.waitForText("nav[aria-label=Screens]", "Blog")
}, 180_000)

afterAll(async () => {
  await view?.close()
  await platform?.stop()
}, 60_000)

const patch = (id: string, version: number, body: unknown) =>
  fetch(`${url}/api/v1/blog/posts/${id}`, {
    method: "PATCH",
    headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json", "if-match": `"${version}"` },
    body: JSON.stringify(body),
  })

describe("the console's Blog screen", () => {
  it("writes a draft, edits it, attaches a file, publishes it: the public API shows it with the file ready", async () => {
    story = await blogStory(view, url, admin.token)
    expect(story.slug).toMatch(/^console-story-/)
  }, 90_000)

  it("uploads a second file and deletes it after asking twice: the post keeps the first", async () => {
    const dir = mkdtempSync(join(tmpdir(), "blog-test-"))
    try {
      const file = join(dir, "second.png")
      writeFileSync(file, PNG)
      const input = (await view.page.$("form[aria-label='Upload an attachment'] input[type=file]")) as unknown as {
        uploadFile(...paths: Array<string>): Promise<void>
      }
      await input.uploadFile(file)
      await view.page.click("form[aria-label='Upload an attachment'] button[type=submit]")
      await view.waitForText("section[aria-label=Attachments] tbody tr", "second.png", 20_000)
      await view.page.click("::-p-xpath(//section[@aria-label='Attachments']//tr[contains(., 'second.png')]//button)")
      await view.clickText("section[aria-label=Attachments] tr button", "Delete second.png?")
      await view.page.waitForFunction(
        "![...document.querySelectorAll('section[aria-label=Attachments] tbody tr')].some((r) => r.textContent.includes('second.png'))",
      )
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    const post = (await (await fetch(`${url}/api/v1/blog/posts/${story.slug}`)).json()) as {
      attachments: ReadonlyArray<{ filename: string; status: string }>
    }
    expect(post.attachments.map((a) => [a.filename.startsWith("pixel-"), a.status])).toEqual([[true, "ready"]])
  })

  it("a double submit of the new-post form makes one post (one Idempotency-Key for the form as written)", async () => {
    const title = `Twice ${admin.id.slice(-6)}`
    const form = "form[aria-label='New post']"
    await view.fill("Title", title, form)
    const before = view.answers.length
    // Two submits in the same task, before the page re-renders its busy button: both requests go out.
    await view.page.$eval(form, (f) => {
      const submit = f as unknown as { requestSubmit(): void }
      submit.requestSubmit()
      submit.requestSubmit()
    })
    await view.waitForText("table", title)
    await view.page.waitForFunction(
      "document.querySelector(\"form[aria-label='New post'] button[aria-busy=true]\") === null",
    )
    const sent = view.answers.slice(before).filter((a) => a.startsWith("POST /api/v1/blog/posts "))
    expect(sent.length).toBe(2)
    const mine = (await (
      await fetch(`${url}/api/v1/blog/me/posts?limit=100`, {
        headers: { authorization: `Bearer ${admin.token}` },
      })
    ).json()) as { items: ReadonlyArray<{ title: string }> }
    expect(mine.items.filter((p) => p.title === title)).toHaveLength(1)
  })

  it("a stale edit shows the 412's detail and changes nothing", async () => {
    const created = await fetch(`${url}/api/v1/blog/posts`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
      body: JSON.stringify({ title: `Stale ${admin.id.slice(-6)}`, body: "first" }),
    })
    expect(created.status).toBe(201)
    const post = (await created.json()) as { id: string; title: string; version: number }
    await view.clickText("form[aria-label='Filter posts'] button", "Show")
    await view.page.waitForSelector(`button[aria-label="Edit “${post.title}”"]`)
    await view.page.click(`button[aria-label="Edit “${post.title}”"]`)
    await view.waitForText("section h2", `Edit “${post.title}”`)
    // Someone else saves first (another tab, another author with update.any).
    expect((await patch(post.id, post.version, { body: "second" })).status).toBe(200)
    await view.fill("Body", "mine", "form[aria-label='Edit post']")
    await view.page.click("form[aria-label='Edit post'] button[type=submit]")
    const problem = await view.waitForText("form[aria-label='Edit post'] [role=alert]", /./)
    expect(problem).toContain("the post is at version 2, not the one If-Match names")
    expect(view.refusals).toContain(`PATCH /api/v1/blog/posts/${post.id} 412`)
    await view.shot("08-blog-stale")
    const now = (await (
      await fetch(`${url}/api/v1/blog/posts/${post.id}`, {
        headers: { authorization: `Bearer ${admin.token}` },
      })
    ).json()) as { body: string; version: number }
    expect(now).toMatchObject({ body: "second", version: 2 })
    // The typed text is still there to copy.
    const typed = await view.page.$eval(
      "form[aria-label='Edit post'] textarea",
      (t) => (t as unknown as { value: string }).value,
    )
    expect(typed).toBe("mine")
  })

  it("deletes a post after asking twice, once the editor holds its current version", async () => {
    // Still at version 1 here: the delete is refused as stale too.
    await view.clickText("button", "Delete post")
    await view.clickText("button", "Delete “Stale")
    await view.waitForText(".blog-editor > .actions [role=alert]", "the post is at version 2")
    await view.clickText(".blog-head button", "Reload")
    await view.waitForText("p[role=status]", "Version 2")
    await view.clickText("button", "Delete post")
    await view.clickText("button", "Delete “Stale")
    await view.page.waitForFunction("document.querySelector('.blog-editor') === null")
    expect(view.answers.some((a) => /^DELETE \/api\/v1\/blog\/posts\/\S+ 204$/.test(a))).toBe(true)
  })

  it("schedules a post from a local date and time (sent as RFC 3339 UTC), then takes it back to draft", async () => {
    const title = `Later ${admin.id.slice(-6)}`
    const created = await fetch(`${url}/api/v1/blog/posts`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin.token}`, "content-type": "application/json" },
      body: JSON.stringify({ title }),
    })
    const post = (await created.json()) as { id: string }
    await view.clickText("form[aria-label='Filter posts'] button", "Show")
    await view.page.waitForSelector(`button[aria-label="Edit “${title}”"]`)
    await view.page.click(`button[aria-label="Edit “${title}”"]`)
    await view.waitForText("section h2", `Edit “${title}”`)
    // A datetime-local's value is the same in every locale (typing into it is not).
    await view.page.$eval("form[aria-label=Schedule] input", (i) => {
      ;(i as unknown as { value: string }).value = "2030-01-02T03:04"
    })
    const expected = await view.page.evaluate(() => new Date("2030-01-02T03:04").toISOString())
    await view.page.click("form[aria-label=Schedule] button[type=submit]")
    await view.waitForText(".blog-publishing", "scheduled")
    const read = async () =>
      (await (
        await fetch(`${url}/api/v1/blog/posts/${post.id}`, { headers: { authorization: `Bearer ${admin.token}` } })
      ).json()) as { status: string; publishAt: string | null }
    const scheduled = await read()
    expect(scheduled.status).toBe("scheduled")
    expect(new Date(scheduled.publishAt!).toISOString()).toBe(expected)
    await view.clickText(".blog-publishing button", "Unpublish")
    await view.waitForText(".blog-publishing", "draft")
    expect((await read()).status).toBe("draft")
  })

  it("fits 375 px (nothing wider than the screen), and axe-core finds no serious violation with the editor open", async () => {
    await view.page.setViewport({ width: 375, height: 900 })
    await view.page.click(`button[aria-label^="Edit “Console story"]`)
    await view.page.waitForSelector("form[aria-label='Edit post']")
    expect(await pageWidth(view)).toBeLessThanOrEqual(375)
    expect(await accessibilityViolations(view)).toEqual([])
    await view.shot("09-blog-narrow")
  })

  it("had no console error, uncaught error, CSP violation or 5xx", () => {
    expect(view.problems).toEqual([])
  })
})
