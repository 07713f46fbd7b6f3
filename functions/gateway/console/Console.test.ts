import { randomUUID } from "node:crypto"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NpmStart, startNpmStart } from "../../../e2e/testing/npmStart.ts"
import { freePortOffset } from "../../../scripts/lib/embedded.ts"
import { startOpenIdProvider } from "../../auth/testing/openIdProvider.ts"
import { manifests } from "../../registry.ts"
import { apiAs, freshEmail, PASSWORD, signUp } from "./testing/accounts.ts"
import { analyticsStory } from "./testing/analyticsStory.ts"
import { billingStory } from "./testing/billingStory.ts"
import { blogStory } from "./testing/blogStory.ts"
import {
  accessibilityViolations,
  type ConsoleBrowser,
  focused,
  loaded,
  openConsole,
  pageWidth,
} from "./testing/browser.ts"

// The web console in a real headless Chromium against `npm start` (embedded defaults): the story of the issue, screen
// by screen, with a screenshot of each (.ci/out/screenshots/console/), and not one console error, uncaught error,
// CSP violation or 5xx on the way.
const adminEmail = freshEmail("admin")
let platform: NpmStart
let admin: Awaited<ReturnType<typeof signUp>>
let member: Awaited<ReturnType<typeof signUp>>
let view: ConsoleBrowser
let op: Awaited<ReturnType<typeof startOpenIdProvider>>

beforeAll(async () => {
  // An OpenID Provider of its own (node-oidc-provider): its client's redirect URI is the gateway's callback, so the
  // gateway's address is chosen first.
  const offset = await freePortOffset()
  const gatewayUrl = `http://127.0.0.1:${manifests.find((m) => m.name === "gateway")!.ports.http + offset}`
  const redirectUri = `${gatewayUrl}/api/v1/auth/oidc/test/callback`
  op = await startOpenIdProvider({ clientId: "console", clientSecret: "provider-secret", redirectUri })
  platform = await startNpmStart({
    PORT_OFFSET: String(offset),
    OIDC_PROVIDERS: JSON.stringify([
      { name: "test", issuer: op.issuer, clientId: "console", clientSecret: "provider-secret", redirectUri },
    ]),
    OIDC_ALLOW_HTTP: "true",
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    RATE_LIMIT_USER_PER_MINUTE: "0",
    RATE_LIMIT_IP_PER_MINUTE: "0",
    // The shortest lifetime auth allows: the console refreshes its token 5 s into the session, within the story.
    ACCESS_TOKEN_TTL_SECONDS: "60",
  })
  admin = await signUp(platform.url, adminEmail, "Grace Hopper")
  member = await signUp(platform.url, freshEmail("member"), "Ada Lovelace")
  view = await openConsole(`${platform.url}/console`)
}, 180_000)

afterAll(async () => {
  await view?.close()
  await platform?.stop()
  await op?.close()
}, 60_000)

const signInAs = async (browser: ConsoleBrowser, email: string, password: string) => {
  await browser.fill("Email", email)
  await browser.fill("Password", password)
  await browser.page.click("form[aria-label='Sign in'] button[type=submit]")
}

describe("the web console in a real browser", () => {
  it("is one page and hashed files from this origin, under a strict Content-Security-Policy", async () => {
    for (const path of ["/console", "/console/"]) {
      const res = await fetch(`${platform.url}${path}`)
      expect(res.status).toBe(200)
      const csp = res.headers.get("content-security-policy") ?? ""
      expect(csp).toContain("script-src 'self'")
      expect(csp).toContain("style-src 'self'")
      expect(csp).not.toContain("unsafe-inline")
      expect(csp).toContain("frame-ancestors 'none'")
      const html = await res.text()
      expect(html).not.toMatch(/<script>|<style>|\sstyle=|\son[a-z]+=/)
      const script = /src="(\/console\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1]
      expect(script).toBeDefined()
      const js = await fetch(`${platform.url}${script}`)
      expect(js.headers.get("content-type")).toContain("text/javascript")
      expect(js.headers.get("cache-control")).toContain("immutable")
    }
    const missing = await fetch(`${platform.url}/console/nothing.js`)
    expect(missing.status).toBe(404)
    expect(missing.headers.get("content-type")).toBe("application/problem+json")
  })

  it("refuses a wrong password with the API's detail, then signs the bootstrap admin in", async () => {
    await signInAs(view, adminEmail, "not the password")
    const refused = await view.waitForText("[role=alert]", /./)
    expect(refused).toContain("wrong email or password")
    await view.shot("01-sign-in-refused")
    await signInAs(view, adminEmail, PASSWORD)
    await view.waitForText("nav[aria-label=Screens]", "Audit log")
    const nav = await view.page.$$eval("nav[aria-label=Screens] a", (links) => links.map((a) => a.textContent))
    expect(nav).toEqual(expect.arrayContaining(["Users", "Roles", "Audit log", "Account"]))
  })

  it("finds a user by email and pages through users", async () => {
    await view.page.goto(`${platform.url}/console#/users`)
    await view.waitForText("caption", "Users")
    await view.fill("Email", member.email.toUpperCase())
    await view.page.click("form[aria-label='Find users'] button[type=submit]")
    await view.waitForText("table", member.email)
    await view.shot("02-users")
  })

  it("creates a role and grants it to the new user", async () => {
    await view.page.click("a[href='#/roles']")
    const role = `editors-${member.id.slice(-6)}`
    await view.fill("Name", role, "form[aria-label='Create a role']")
    await view.fill("Description", "Write and publish posts", "form[aria-label='Create a role']")
    await view.page.waitForSelector("input[name=permission][value='blog.post.create']")
    await view.page.click("input[name=permission][value='blog.post.create']")
    await view.page.click("input[name=permission][value='blog.post.publish']")
    await view.page.click("form[aria-label='Create a role'] button[type=submit]")
    await view.waitForText("table", role)
    await view.fill("User's email", member.email)
    await view.page.click('form[aria-label="Find a user\'s roles"] button[type=submit]')
    await view.waitForText("section", `Roles of Ada Lovelace`)
    await view.choose("form[aria-label='Grant a role'] select", role)
    await view.page.click("form[aria-label='Grant a role'] button[type=submit]")
    await view.waitForText("ul.held", role)
    await view.shot("03-roles")
    const held = (await apiAs(platform.url, admin.token).get(`/api/v1/users/${member.id}/roles`)) as {
      items: Array<{ name: string }>
    }
    expect(held.items.map((r) => r.name)).toEqual([role])
  })

  it("shows the grant in the audit log and verifies the chain", async () => {
    await view.page.click("a[href='#/audit']")
    await view.fill("Action", "authz.assignment.created")
    await view.page.click("form[aria-label='Filter the audit log'] button[type=submit]")
    await platform.waitFor("the grant's audit record", async () => {
      await view.page.click("form[aria-label='Filter the audit log'] button[type=submit]")
      const text = await view.page.$eval("main", (m) => m.textContent ?? "")
      return text.includes(member.id) ? true : undefined
    })
    await view.clickText("button", "Verify chain")
    const verdict = await view.waitForText("p[role=status]", "The chain is intact")
    expect(verdict).toMatch(/\d+ records checked/)
    await view.shot("04-audit")
  })

  it("publishes a post with an attachment (the Blog story)", async () => {
    const story = await blogStory(view, platform.url, admin.token)
    expect(story.slug).toMatch(/^console-story-/)
  }, 90_000)

  it("shows a plan and a chart with data (the Billing and Analytics stories)", async () => {
    await billingStory(view, platform.url, admin.token)
    await analyticsStory(view, platform.url, admin.token)
  }, 90_000)

  it("shows a user only the screens and actions their grants allow", async () => {
    const limited = await openConsole(`${platform.url}/console`)
    try {
      // The member holds the role made above (blog.post.create and .publish): Blog, their own billing, their account.
      await signInAs(limited, member.email, PASSWORD)
      await limited.waitForText("nav[aria-label=Screens]", "Blog")
      const nav = await limited.page.$$eval("nav[aria-label=Screens] a", (links) => links.map((a) => a.textContent))
      expect(nav).toEqual(["Billing", "Blog", "Account"])
      // Billing: their own subscriptions and invoices, no plan to create.
      await limited.page.click("a[href='#/billing']")
      await limited.waitForText("section[aria-label='My invoices'] caption", "My invoices")
      expect(await limited.page.$("form[aria-label='New plan']")).toBeNull()
      // A screen they may not see, named in the address, shows the first one they may.
      await limited.page.goto(`${platform.url}/console#/users`)
      await limited.waitForText("main h1", "Billing")
      await limited.shot("10-limited-user")
      expect(limited.refusals.filter((r) => / 403$/.test(r))).toEqual([])
      expect(limited.problems).toEqual([])
    } finally {
      await limited.close()
    }
  })

  it("signs in with an OpenID provider: the one-time code leaves the address and becomes a session", async () => {
    const email = freshEmail("oidc")
    Object.assign(op.account, { sub: randomUUID(), email, emailVerified: true, name: "Katherine Johnson" })
    const oidc = await openConsole(`${platform.url}/console`)
    try {
      await oidc.clickText("a", "Sign in with test")
      await oidc.waitForText("header", "Katherine Johnson")
      expect(oidc.page.url()).toBe(`${platform.url}/console`)
      expect(oidc.answers).toContain("POST /api/v1/auth/oidc/exchange 200")
      await oidc.page.click("a[href='#/account']")
      await oidc.waitForText("main", email)
      expect(oidc.problems).toEqual([])
    } finally {
      await oidc.close()
    }
  })

  it("signs in with an OpenID provider that refuses: back at the console, the reason shows", async () => {
    const denied = await openConsole(`${platform.url}/console`)
    try {
      // The provider answers the user's "no" (RFC 6749 §4.1.2.1): its authorization endpoint sends the browser back
      // to the callback with `error` and the attempt's state.
      await denied.page.setRequestInterception(true)
      denied.page.on("request", (request) => {
        const url = new URL(request.url())
        if (url.origin !== op.issuer) return void request.continue()
        const back = new URL(`${platform.url}/api/v1/auth/oidc/test/callback`)
        back.search = new URLSearchParams({
          error: "access_denied",
          state: url.searchParams.get("state") ?? "",
        }).toString()
        void request.respond({ status: 302, headers: { location: back.href } })
      })
      await denied.clickText("a", "Sign in with test")
      const reason = await denied.waitForText("[role=alert]", /./)
      expect(reason).toContain("the identity provider refused the sign-in (access_denied)")
      expect(denied.page.url()).toBe(`${platform.url}/console`)
      await denied.page.waitForSelector("form[aria-label='Sign in']")
      expect(denied.problems).toEqual([])
    } finally {
      await denied.close()
    }
  })

  it("works at 375 px wide: nothing wider than the screen", async () => {
    const narrow = await openConsole(`${platform.url}/console`, { width: 375 })
    try {
      await signInAs(narrow, adminEmail, PASSWORD)
      await narrow.waitForText("nav[aria-label=Screens]", "Users")
      for (const screen of ["users", "roles", "audit", "account"]) {
        await narrow.page.goto(`${platform.url}/console#/${screen}`)
        await narrow.page.waitForSelector("main h1")
        await new Promise((r) => setTimeout(r, 300))
        const width = await pageWidth(narrow)
        expect(width, screen).toBeLessThanOrEqual(375)
        await narrow.shot(`narrow-${screen}`)
      }
      expect(narrow.problems).toEqual([])
    } finally {
      await narrow.close()
    }
  })

  it("is usable with the keyboard alone, and axe-core finds no serious accessibility violation on any screen", async () => {
    const keys = await openConsole(`${platform.url}/console`)
    try {
      expect(await accessibilityViolations(keys)).toEqual([])
      // Sign in with the keyboard: the email field first, Tab to the password, Enter submits.
      await keys.page.keyboard.press("Tab")
      await keys.page.keyboard.type(adminEmail)
      await keys.page.keyboard.press("Tab")
      await keys.page.keyboard.type(PASSWORD)
      await keys.page.keyboard.press("Enter")
      await keys.waitForText("nav[aria-label=Screens]", "Audit log")
      // Tab to the "Roles" link and follow it: the new screen's heading takes the focus.
      for (let i = 0; i < 10; i++) {
        await keys.page.keyboard.press("Tab")
        if ((await focused(keys)).text === "Roles") break
      }
      await keys.page.keyboard.press("Enter")
      await platform.waitFor("the heading focused", async () => ((await focused(keys)).tag === "H1" ? true : undefined))
      expect(await focused(keys)).toEqual({ tag: "H1", text: "Roles" })
      for (const screen of ["users", "roles", "audit", "account"]) {
        await keys.page.goto(`${platform.url}/console#/${screen}`)
        await keys.page.waitForSelector("main h1")
        await loaded(keys)
        expect(await accessibilityViolations(keys), screen).toEqual([])
      }
      // The check sees what it should: a field without a label is reported.
      await keys.page.evaluate("document.querySelector('main').append(document.createElement('input'))")
      expect((await accessibilityViolations(keys)).join("\n")).toMatch(/^label: /m)
      expect(keys.problems).toEqual([])
    } finally {
      await keys.close()
    }
  })

  it("refreshed the access token before it expired, and signs out", async () => {
    // The story above took longer than the first refresh's delay (5 s at a 60 s lifetime): wait for it if not.
    await platform.waitFor("a refresh", async () =>
      view.answers.includes("POST /api/v1/auth/refresh 200") ? true : undefined,
    )
    await view.page.click("a[href='#/account']")
    await view.waitForText("main", "Your grants")
    expect(view.answers.filter((a) => /\/api\/v1\/auth\/refresh [45]/.test(a))).toEqual([])
    await view.clickText("button", "Sign out")
    await view.page.waitForSelector("form[aria-label='Sign in']")
    // The session ends here first, then at the server (its access tokens stop working at once).
    await platform.waitFor("the logout", async () =>
      view.answers.includes("POST /api/v1/auth/logout 204") ? true : undefined,
    )
  })

  it("a session ended elsewhere: the next call's 401 and the refused refresh bring back the sign-in form, with a notice", async () => {
    const other = await openConsole(`${platform.url}/console`)
    try {
      await signInAs(other, member.email, PASSWORD)
      await other.waitForText("nav[aria-label=Screens]", "Account")
      // Every session of the member ends (another device's "sign out everywhere").
      await apiAs(platform.url, member.token).post("/api/v1/auth/logout-all", {})
      await other.page.click("a[href='#/account']")
      await other.waitForText(".notice", "Your session ended")
      await other.page.waitForSelector("form[aria-label='Sign in']")
      expect(other.refusals).toContain("POST /api/v1/auth/refresh 401")
      expect(other.problems).toEqual([])
    } finally {
      await other.close()
    }
  })

  it("had no console error, uncaught error, CSP violation or 5xx", () => {
    expect(view.problems).toEqual([])
  })
})
