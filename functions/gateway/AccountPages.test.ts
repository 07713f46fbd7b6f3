import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { manifests } from "../registry.ts"
import { ENDPOINTS, PATHS } from "./AccountPages.ts"
import { openPage } from "./testing/accountPage.ts"
import { type GatewayUnderTest, startGateway } from "./testing/gatewayHarness.ts"

// The pages the verification and reset mails link to, served by a real gateway (its upstreams are not running here:
// what the pages show when the API answers is in e2e/Platform.test.ts).
let gateway: GatewayUnderTest
beforeAll(async () => {
  gateway = await startGateway()
})
afterAll(async () => {
  await gateway?.close()
  if (gateway) await sql(`DROP SCHEMA IF EXISTS ${gateway.schema} CASCADE`)
})

const get = (path: string) => fetch(`${gateway.url}${path}`)

describe("the mails' pages", () => {
  it("call routes identity declares as public POST routes", () => {
    const identity = manifests.find((m) => m.name === "identity")!
    for (const path of Object.values(ENDPOINTS)) {
      expect(identity.routes.find((r) => r.path === path)).toMatchObject({ method: "POST", auth: "public" })
    }
  })

  it.each([PATHS.verifyEmail, PATHS.resetPassword])(
    "%s is a static page: 200 text/html, its script from this origin only, never stored, no Referer",
    async (path) => {
      const res = await get(`${path}?token=abc`)
      expect(res.status).toBe(200)
      expect(res.headers.get("content-type")).toMatch(/^text\/html/)
      const csp = res.headers.get("content-security-policy") ?? ""
      expect(csp).toContain("default-src 'none'")
      expect(csp).toContain("script-src 'self'")
      expect(csp).toContain("connect-src 'self'")
      expect(csp).toContain("frame-ancestors 'none'")
      expect(csp).not.toContain("unsafe")
      expect(res.headers.get("referrer-policy")).toBe("no-referrer")
      expect(res.headers.get("cache-control")).toBe("no-store")
      expect(res.headers.get("x-content-type-options")).toBe("nosniff")
      const html = await res.text()
      // No inline script or style (the policy would block them), nothing from elsewhere.
      expect(html.match(/<script[^>]*>/g)).toEqual([`<script src="${PATHS.script}" defer>`])
      expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/)
      expect(html).not.toMatch(/https?:\/\//)
    },
  )

  it("serves the script and the stylesheet, the script calling identity's routes", async () => {
    const js = await get(PATHS.script)
    expect(js.status).toBe(200)
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8")
    expect(js.headers.get("x-content-type-options")).toBe("nosniff")
    const text = await js.text()
    expect(text).toContain(ENDPOINTS.verifyEmail)
    expect(text).toContain(ENDPOINTS.resetPassword)
    const css = await get(PATHS.style)
    expect(css.status).toBe(200)
    expect(css.headers.get("content-type")).toBe("text/css; charset=utf-8")
  })

  it("the reset form asks for what identity enforces: 8 to 128 characters, twice", async () => {
    const html = await (await get(PATHS.resetPassword)).text()
    expect(html.match(/minlength="8" maxlength="128"/g)).toHaveLength(2)
  })

  it("the verify page posts the token, takes it out of the address bar and shows the API's detail", async () => {
    const page = await openPage(gateway.url, `http://localhost:8080${PATHS.verifyEmail}?token=abc_DEF-123`)
    expect(page.search()).toBe("")
    const shown = await page.settled()
    expect(page.requests).toEqual([{ path: ENDPOINTS.verifyEmail, body: { token: "abc_DEF-123" } }])
    // identity is not running behind this gateway: the gateway's own problem detail is what the page shows.
    expect(shown.kind).toBe("error")
    expect(shown.text.length).toBeGreaterThan(0)
  })

  it("the reset page checks the password's length and repetition before posting token and password", async () => {
    const page = await openPage(gateway.url, `http://localhost:8080${PATHS.resetPassword}?token=t0k3n`)
    expect(page.element("reset").hidden).toBe(false)
    page.submitPassword("short")
    expect(await page.settled()).toMatchObject({ kind: "error", text: expect.stringContaining("8 to 128") })
    page.submitPassword("long enough 1", "long enough 2")
    expect(await page.settled()).toMatchObject({ kind: "error", text: expect.stringContaining("differ") })
    expect(page.requests).toEqual([])
    page.submitPassword("a new passphrase")
    await page.settled()
    expect(page.requests).toEqual([
      { path: ENDPOINTS.resetPassword, body: { token: "t0k3n", newPassword: "a new passphrase" } },
    ])
  })

  it("a link without a token says so and posts nothing", async () => {
    const page = await openPage(gateway.url, `http://localhost:8080${PATHS.verifyEmail}`)
    expect(await page.settled()).toMatchObject({ kind: "error", text: expect.stringContaining("no token") })
    expect(page.requests).toEqual([])
  })
})
