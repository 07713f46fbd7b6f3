// The console in a real browser for tests: Debian's headless Chromium (CHROMIUM, default /usr/bin/chromium) driven by
// puppeteer-core, every console error, uncaught error, Content-Security-Policy violation and 5xx answer recorded, and
// screenshots saved as CI artifacts (.ci/out/screenshots/console/).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import puppeteer, { type Browser, type ElementHandle, type Page } from "puppeteer-core"

// The page's globals, as the functions evaluated in it see them (this file is type-checked without the DOM's types).
interface Node {
  readonly textContent: string | null
}
interface Element extends Node {
  querySelector(selector: string): Element | null
}
declare const document: {
  querySelectorAll(selector: string): Iterable<Element>
  querySelector(selector: string): { readonly options?: Iterable<Node & { readonly value: string }> } | null
  addEventListener(type: string, listener: (event: { violatedDirective: string; blockedURI: string }) => void): void
  readonly documentElement: { readonly scrollWidth: number }
  readonly activeElement: (Node & { readonly tagName: string }) | null
}

const ROOT = join(import.meta.dirname, "..", "..", "..", "..")
/** Where the screenshots go: CI keeps `.ci/out`. */
export const SCREENSHOTS = join(ROOT, ".ci", "out", "screenshots", "console")

export interface ConsoleBrowser {
  readonly browser: Browser
  readonly page: Page
  /** What went wrong in the page: console errors, uncaught errors, CSP violations, 5xx answers. */
  readonly problems: Array<string>
  /** Requests the API refused (4xx): expected in tests of error messages, listed for assertions. */
  readonly refusals: Array<string>
  /** Every answer the page received: `METHOD /path STATUS`. */
  readonly answers: Array<string>
  /** Saves a full-page screenshot named `<name>.png`. */
  shot(name: string): Promise<void>
  /** The text of the element `selector` matches, once it shows `text` (a string it contains, or a pattern). */
  waitForText(selector: string, text: string | RegExp, timeoutMs?: number): Promise<string>
  /** Clicks the first `selector` element whose text contains `text`. */
  clickText(selector: string, text: string): Promise<void>
  /** Chooses the option whose text is `text` in the select `selector`, once it is there. */
  choose(selector: string, text: string): Promise<void>
  /** Types into the form field labelled `label` (its label's text), replacing its value. */
  fill(label: string, value: string, within?: string): Promise<void>
  close(): Promise<void>
}

/** Opens `url` (the console's page) in a fresh headless Chromium at `width` × 900. */
export const openConsole = async (url: string, options: { readonly width?: number } = {}): Promise<ConsoleBrowser> => {
  const profile = mkdtempSync(join(tmpdir(), "console-chromium-"))
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    userDataDir: profile,
    // As root in a container, without the network: no sandbox, no GPU, no background calls out.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    defaultViewport: { width: options.width ?? 1280, height: 900 },
  })
  const page = await browser.newPage()
  const problems: Array<string> = []
  const refusals: Array<string> = []
  const answers: Array<string> = []
  // CSP violations are reported to the page as events before the console says anything: record both.
  await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`),
    )
  })
  page.on("console", (message) => {
    if (message.type() !== "error") return
    const text = message.text()
    // A refused API call is logged by Chromium as "Failed to load resource" with its status; the response listener
    // below sorts those into refusals (4xx) and problems (5xx).
    if (/^Failed to load resource: the server responded with a status of [45]\d\d/.test(text)) return
    problems.push(`console: ${text}`)
  })
  page.on("pageerror", (error) => problems.push(`uncaught: ${error instanceof Error ? error.message : String(error)}`))
  page.on("response", (response) => {
    const status = response.status()
    const what = `${response.request().method()} ${new URL(response.url()).pathname} ${status}`
    answers.push(what)
    if (status >= 500) problems.push(`answer: ${what}`)
    else if (status >= 400) refusals.push(what)
  })
  // A request that failed before its answer (Chromium calls an answered 204 whose empty body nothing read aborted too).
  page.on("requestfailed", (request) => {
    if (request.response() === null) problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`)
  })
  await page.goto(url, { waitUntil: "networkidle0" })
  mkdirSync(SCREENSHOTS, { recursive: true })

  const waitForText = async (selector: string, text: string | RegExp, timeoutMs = 10_000) => {
    const pattern = typeof text === "string" ? text : text.source
    const flags = typeof text === "string" ? "" : text.flags
    const literal = typeof text === "string"
    const handle = await page.waitForFunction(
      (sel: string, p: string, f: string, lit: boolean) =>
        [...document.querySelectorAll(sel)]
          .map((e: Node) => e.textContent ?? "")
          .find((t) => (lit ? t.includes(p) : new RegExp(p, f).test(t))),
      { timeout: timeoutMs },
      selector,
      pattern,
      flags,
      literal,
    )
    return (await handle.jsonValue()) as string
  }

  return {
    browser,
    page,
    problems,
    refusals,
    answers,
    shot: async (name) => {
      await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) as `${string}.png`, fullPage: true })
    },
    waitForText,
    clickText: async (selector, text) => {
      const handle = await page.waitForFunction(
        (sel: string, t: string) =>
          [...document.querySelectorAll(sel)].find((e: Node) => (e.textContent ?? "").includes(t)),
        { timeout: 10_000 },
        selector,
        text,
      )
      await (handle as unknown as { click(): Promise<void> }).click()
    },
    choose: async (selector, text) => {
      const handle = await page.waitForFunction(
        (sel: string, t: string) =>
          [...(document.querySelector(sel)?.options ?? [])].find((o) => o.textContent === t)?.value,
        { timeout: 10_000 },
        selector,
        text,
      )
      await page.select(selector, (await handle.jsonValue()) as string)
    },
    fill: async (label, value, within = "body") => {
      const handle = await page.waitForFunction(
        (scope: string, l: string) =>
          [...document.querySelectorAll(`${scope} label`)]
            .find((e: Element) => e.querySelector("span")?.textContent?.trim() === l)
            ?.querySelector("input, textarea, select"),
        { timeout: 10_000 },
        within,
        label,
      )
      const field = handle as unknown as ElementHandle<{ value: string }>
      await field.click({ count: 3 })
      await field.evaluate((e) => {
        e.value = ""
      })
      await field.type(value)
    },
    close: async () => {
      await browser.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/** How wide the page's content is (wider than the window: it scrolls sideways). */
export const pageWidth = (browser: ConsoleBrowser) => browser.page.evaluate(() => document.documentElement.scrollWidth)

/**
 * The page's serious and critical accessibility violations (WCAG 2 A and AA rules of axe-core, run in the page through
 * the DevTools protocol, which the page's CSP does not govern): `rule: target…` each.
 */
export const accessibilityViolations = async (browser: ConsoleBrowser): Promise<Array<string>> => {
  const { source } = await import("axe-core")
  await browser.page.evaluate(source)
  const violations = (await browser.page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(options: unknown): Promise<{ violations: unknown }> } }).axe
    const result = await axe.run({ runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } })
    return result.violations
  })) as Array<{ id: string; impact: string | null; nodes: Array<{ target: Array<string> }> }>
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)
}

/** The focused element: its tag and text. */
export const focused = (browser: ConsoleBrowser) =>
  browser.page.evaluate(() => ({
    tag: document.activeElement?.tagName ?? "",
    text: document.activeElement?.textContent ?? "",
  }))

/** Waits until the screen shows no loading line. */
export const loaded = async (browser: ConsoleBrowser) => {
  await browser.page.waitForFunction(() => [...document.querySelectorAll(".loading")].length === 0)
}
