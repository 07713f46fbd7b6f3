import { decodeJwt } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type AuthUnderTest, type IdentityUnderTest, startAuth, startIdentityGrpc } from "./testing/authApp.ts"
import { followToRedirect, startOpenIdProvider } from "./testing/openIdProvider.ts"

// OIDC sign-in against a real OpenID Provider (oidc-provider) on 127.0.0.1, auth and identity on fresh schemas.
const redirectUri = "http://app.test/api/v1/auth/oidc/test/callback"
let op: Awaited<ReturnType<typeof startOpenIdProvider>>
let identity: IdentityUnderTest
let auth: AuthUnderTest
beforeAll(async () => {
  op = await startOpenIdProvider({ clientId: "platform", clientSecret: "provider-secret", redirectUri })
  identity = await startIdentityGrpc()
  auth = await startAuth(identity, {
    OIDC_ALLOW_HTTP: "true",
    OIDC_PROVIDERS: JSON.stringify([
      { name: "test", issuer: op.issuer, clientId: "platform", clientSecret: "provider-secret", redirectUri },
    ]),
  })
}, 60_000)
afterAll(async () => {
  await auth?.close()
  await identity?.running.close()
  await op?.close()
})

const unique = (label: string) => `${label}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`

const signInAs = (account: { sub: string; email: string; emailVerified?: boolean; name?: string }) => {
  Object.assign(op.account, { emailVerified: true, name: "Ada Lovelace", ...account })
  return followToRedirect(`${auth.url}/api/v1/auth/oidc/test/authorize`, redirectUri)
}

const callback = (back: URL) => fetch(`${auth.url}/api/v1/auth/oidc/test/callback${back.search}`)

describe("auth: OIDC sign-in", () => {
  it("authorize redirects with PKCE (S256), state and nonce", async () => {
    const res = await fetch(`${auth.url}/api/v1/auth/oidc/test/authorize`, { redirect: "manual" })
    expect(res.status).toBe(302)
    const location = new URL(res.headers.get("location")!)
    expect(location.origin).toBe(op.issuer)
    expect(location.searchParams.get("code_challenge_method")).toBe("S256")
    expect(location.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(location.searchParams.get("state")).toMatch(/.{20,}/)
    expect(location.searchParams.get("nonce")).toMatch(/.{20,}/)
    expect(location.searchParams.get("redirect_uri")).toBe(redirectUri)
  })

  it("a first sign-in creates a verified account; the next one signs into the same account", async () => {
    const email = unique("oidc")
    const first = await callback(await signInAs({ sub: `sub-${email}`, email }))
    expect(first.status).toBe(200)
    const tokens = (await first.json()) as { access_token: string; refresh_token: string }
    const userId = decodeJwt(tokens.access_token).sub
    const again = await callback(await signInAs({ sub: `sub-${email}`, email }))
    expect(again.status).toBe(200)
    expect(decodeJwt(((await again.json()) as { access_token: string }).access_token).sub).toBe(userId)
    const refreshed = await fetch(`${auth.url}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ refresh_token: tokens.refresh_token }),
    })
    expect(refreshed.status).toBe(200)
  })

  it("links to an existing password account by the provider-verified email", async () => {
    const email = unique("linked")
    const registered = await fetch(`${auth.url}/api/v1/auth/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email, password: "correct horse battery", name: "Ada" }),
    })
    const user = (await registered.json()) as { id: string }
    const res = await callback(await signInAs({ sub: `sub-${email}`, email: email.toUpperCase() }))
    expect(res.status).toBe(200)
    expect(decodeJwt(((await res.json()) as { access_token: string }).access_token).sub).toBe(user.id)
  })

  it("an email the provider has not verified is refused with 403", async () => {
    const email = unique("unverified")
    const res = await callback(await signInAs({ sub: `sub-${email}`, email, emailVerified: false }))
    expect(res.status).toBe(403)
    expect(((await res.json()) as { code: string }).code).toBe("forbidden")
  })

  it("a replayed, forged or missing state is refused with 401, never 5xx", async () => {
    const email = unique("replay")
    const back = await signInAs({ sub: `sub-${email}`, email })
    expect((await callback(back)).status).toBe(200)
    expect((await callback(back)).status).toBe(401)
    const forged = new URL(back)
    forged.searchParams.set("state", "forged-state")
    expect((await callback(forged)).status).toBe(401)
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/test/callback?code=abc`)).status).toBe(401)
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/test/callback?error=access_denied`)).status).toBe(401)
  })

  it("a code exchanged with another attempt's state fails the PKCE/nonce checks (401)", async () => {
    const email = unique("swap")
    const first = await signInAs({ sub: `sub-${email}`, email })
    const second = await signInAs({ sub: `sub-${email}`, email })
    const swapped = new URL(first)
    swapped.searchParams.set("state", second.searchParams.get("state")!)
    expect((await callback(swapped)).status).toBe(401)
  })

  it("an unknown provider is 404, a malformed name 400", async () => {
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/nope/authorize`, { redirect: "manual" })).status).toBe(404)
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/NOT_OK!/authorize`, { redirect: "manual" })).status).toBe(400)
  })
})
