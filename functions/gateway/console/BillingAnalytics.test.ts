import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NpmStart, startNpmStart } from "../../../e2e/testing/npmStart.ts"
import { freshEmail, PASSWORD, signUp } from "./testing/accounts.ts"
import { analyticsStory } from "./testing/analyticsStory.ts"
import { billingStory } from "./testing/billingStory.ts"
import { accessibilityViolations, type ConsoleBrowser, openConsole, pageWidth } from "./testing/browser.ts"

// The Billing and Analytics screens in a real headless Chromium against `npm start` (embedded defaults), signed in as
// the bootstrap admin: their stories, a refused plan showing the API's validation detail, both screens at 375 px, uPlot
// served as a chunk of its own, and not one console error, uncaught error, CSP violation or 5xx on the way.
const adminEmail = freshEmail("admin")
let platform: NpmStart
let admin: Awaited<ReturnType<typeof signUp>>
let view: ConsoleBrowser

beforeAll(async () => {
  platform = await startNpmStart({
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    RATE_LIMIT_USER_PER_MINUTE: "0",
    RATE_LIMIT_IP_PER_MINUTE: "0",
  })
  admin = await signUp(platform.url, adminEmail, "Grace Hopper")
  view = await openConsole(`${platform.url}/console`)
  await view.fill("Email", adminEmail)
  await view.fill("Password", PASSWORD)
  await view.page.click("form[aria-label='Sign in'] button[type=submit]")
  await view.waitForText("nav[aria-label=Screens]", "Analytics")
}, 180_000)

afterAll(async () => {
  await view?.close()
  await platform?.stop()
}, 60_000)

describe("the Billing and Analytics screens in a real browser", () => {
  it("serves the entry script on the page and uPlot as a lazy chunk, not on the first paint", async () => {
    const html = await (await fetch(`${platform.url}/console`)).text()
    const scripts = [...html.matchAll(/src="\/console\/([^"]+)"/g)].map((m) => m[1])
    expect(scripts).toHaveLength(1)
    expect(scripts[0]).toMatch(/^app-[A-Z0-9]+\.js$/)
    const entry = await (await fetch(`${platform.url}/console/${scripts[0]}`)).text()
    const chunk = /uPlot[^"']*\.js/.exec(entry)?.[0]
    expect(chunk).toBeDefined()
    const res = await fetch(`${platform.url}/console/${chunk}`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/javascript")
    // Signed in on the Users screen, the console has not loaded it.
    expect(view.answers.filter((a) => a.includes("uPlot"))).toEqual([])
  })

  it("creates a plan and lists it (the Billing story)", async () => {
    await billingStory(view, platform.url, admin.token)
  }, 60_000)

  it("shows the API's validation detail for a bad plan", async () => {
    const form = "form[aria-label='New plan']"
    await view.fill("Code", `bad-${Date.now()}`, form)
    await view.fill("Name", "Bad plan", form)
    await view.fill("Amount", "5", form)
    await view.fill("Interval count", "0", form)
    await view.page.click(`${form} button[type=submit]`)
    const problem = await view.waitForText(`${form} [role=alert]`, /./)
    expect(problem).toMatch(/intervalCount/)
    // Without an amount the API names the missing field.
    await view.fill("Interval count", "1", form)
    await view.fill("Amount", "", form)
    await view.page.click(`${form} button[type=submit]`)
    await view.waitForText(`${form} [role=alert]`, "amount")
    expect(view.refusals.filter((r) => r.startsWith("POST /api/v1/billing/plans 4"))).toHaveLength(2)
  }, 30_000)

  it("draws the overview, a chart with data and top values (the Analytics story)", async () => {
    await analyticsStory(view, platform.url, admin.token)
  }, 60_000)

  it("fits both screens in 375 px, the chart at the container's width", async () => {
    await view.page.setViewport({ width: 375, height: 800 })
    await view.page.click("a[href='#/billing']")
    await view.waitForText("section[aria-label=Plans] caption", "Active plans")
    expect(await pageWidth(view)).toBeLessThanOrEqual(375)
    await view.shot("06-billing-375")
    await view.page.click("a[href='#/analytics']")
    await view.page.waitForSelector(".chart canvas", { timeout: 10_000 })
    // The ResizeObserver follows the container: the canvas is no wider than its box.
    await view.page.waitForFunction(
      "document.querySelector('.chart canvas').getBoundingClientRect().width <= document.querySelector('.chart').clientWidth",
      { timeout: 5_000 },
    )
    expect(await pageWidth(view)).toBeLessThanOrEqual(375)
    await view.shot("07-analytics-375")
    await view.page.setViewport({ width: 1280, height: 900 })
  }, 30_000)

  it("has no serious accessibility violation on either screen (axe-core, WCAG 2.1 A/AA)", async () => {
    await view.page.click("a[href='#/billing']")
    await view.waitForText("section[aria-label='My invoices'] caption", "My invoices")
    expect(await accessibilityViolations(view)).toEqual([])
    await view.page.click("a[href='#/analytics']")
    await view.page.waitForSelector(".chart canvas", { timeout: 10_000 })
    await view.waitForText("section[aria-label='Top values'] caption", "Top")
    expect(await accessibilityViolations(view)).toEqual([])
  }, 30_000)

  it("met no console error, uncaught error, CSP violation or 5xx", () => {
    expect(view.problems).toEqual([])
  })
})
