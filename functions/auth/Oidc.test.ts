import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { decodeJwt } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { sql } from "../../shared/testing/harness.ts"
import { Users } from "../identity/Users.ts"
import { type AuthUnderTest, type IdentityUnderTest, startAuth, startIdentityGrpc } from "./testing/authApp.ts"
import { followToRedirect, type Redirected, startOpenIdProvider } from "./testing/openIdProvider.ts"

// OIDC sign-in against a real OpenID Provider (oidc-provider) on 127.0.0.1, auth and identity on fresh schemas.
const redirectUri = "http://app.test/api/v1/auth/oidc/test/callback"
let op: Awaited<ReturnType<typeof startOpenIdProvider>>
let identity: IdentityUnderTest
let auth: AuthUnderTest

// A provider that only publishes its discovery document, at /<name>, counting how often it is asked: "slow" answers
// after 200 ms, "flaky" fails its first discovery with a 500.
const discoveries = { slow: 0, flaky: 0 }
const discoveryServer = createServer((req, res) => {
  const name = /^\/(slow|flaky)\/\.well-known\/openid-configuration$/.exec(req.url ?? "")?.[1] as
    | keyof typeof discoveries
    | undefined
  if (name === undefined) return void res.writeHead(404).end()
  const asked = ++discoveries[name]
  const issuer = `http://127.0.0.1:${(discoveryServer.address() as AddressInfo).port}/${name}`
  const answer = () =>
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        issuer,
        authorization_endpoint: `${issuer}/authorize`,
        token_endpoint: `${issuer}/token`,
        jwks_uri: `${issuer}/jwks`,
        response_types_supported: ["code"],
        subject_types_supported: ["public"],
        id_token_signing_alg_values_supported: ["RS256"],
      }),
    )
  if (name === "flaky" && asked === 1) res.writeHead(500).end()
  else if (name === "slow") setTimeout(answer, 200)
  else answer()
})
const discoveryProvider = (name: keyof typeof discoveries) => ({
  name,
  issuer: `http://127.0.0.1:${(discoveryServer.address() as AddressInfo).port}/${name}`,
  clientId: "platform",
  redirectUri: `http://app.test/api/v1/auth/oidc/${name}/callback`,
})

beforeAll(async () => {
  op = await startOpenIdProvider({ clientId: "platform", clientSecret: "provider-secret", redirectUri })
  await new Promise<void>((resolve) => discoveryServer.listen(0, "127.0.0.1", resolve))
  identity = await startIdentityGrpc()
  auth = await startAuth(identity, {
    OIDC_ALLOW_HTTP: "true",
    OIDC_PROVIDERS: JSON.stringify([
      { name: "test", issuer: op.issuer, clientId: "platform", clientSecret: "provider-secret", redirectUri },
      discoveryProvider("slow"),
      discoveryProvider("flaky"),
    ]),
  })
}, 60_000)
afterAll(async () => {
  await auth?.close()
  await identity?.running.close()
  await op?.close()
  await new Promise((resolve) => discoveryServer.close(resolve))
})

const unique = (label: string) => `${label}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`

const signInAs = (account: { sub: string; email: string; emailVerified?: boolean; name?: string }) => {
  Object.assign(op.account, { emailVerified: true, name: "Ada Lovelace", ...account })
  return followToRedirect(`${auth.url}/api/v1/auth/oidc/test/authorize`, redirectUri)
}

const registerAs = async (email: string) => {
  const res = await fetch(`${auth.url}/api/v1/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "correct horse battery", name: "Ada" }),
  })
  expect(res.status).toBe(201)
  return (await res.json()) as { id: string }
}

const callback = (back: Redirected, cookie = back.cookie) =>
  fetch(`${auth.url}/api/v1/auth/oidc/test/callback${back.url.search}`, { headers: { cookie } })

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

  it("links to an existing verified account by the provider-verified email", async () => {
    const email = unique("linked")
    const user = await registerAs(email)
    const [mail] = await sql(`SELECT text FROM ${identity.db.schema}.mail_outbox WHERE "to" = $1`, [email])
    const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(String(mail?.text))?.[1]
    await Effect.runPromise(
      Effect.flatMap(Effect.service(Users), (users) => users.verifyEmail(token!)).pipe(
        Effect.provideContext(identity.running.context),
      ),
    )
    const res = await callback(await signInAs({ sub: `sub-${email}`, email: email.toUpperCase() }))
    expect(res.status).toBe(200)
    expect(decodeJwt(((await res.json()) as { access_token: string }).access_token).sub).toBe(user.id)
  })

  it("refuses to link an account whose email its owner never verified (409), so it cannot be taken over", async () => {
    // Someone registered the address first; its real owner now arrives through the provider.
    const email = unique("squatted")
    await registerAs(email)
    const res = await callback(await signInAs({ sub: `sub-${email}`, email }))
    expect(res.status).toBe(409)
    expect(((await res.json()) as { code: string }).code).toBe("conflict")
  })

  it("a callback from another browser (without the attempt's cookie) is refused with 401", async () => {
    const email = unique("elsewhere")
    const back = await signInAs({ sub: `sub-${email}`, email })
    expect((await callback(back, "")).status).toBe(401)
    expect((await callback(back, back.cookie.replace(/oidc_attempt=[^;]+/, "oidc_attempt=forged"))).status).toBe(401)
  })

  it("token responses are not cacheable; the attempt cookie is HttpOnly, Lax and scoped to the OIDC routes", async () => {
    const start = await fetch(`${auth.url}/api/v1/auth/oidc/test/authorize`, { redirect: "manual" })
    const cookie = start.headers.get("set-cookie") ?? ""
    expect(cookie).toMatch(/^oidc_attempt=[A-Za-z0-9_-]{43};/)
    expect(cookie).toContain("HttpOnly")
    expect(cookie).toContain("SameSite=Lax")
    expect(cookie).toContain("Path=/api/v1/auth/oidc")
    const email = unique("nostore")
    const res = await callback(await signInAs({ sub: `sub-${email}`, email }))
    expect(res.headers.get("cache-control")).toBe("no-store")
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
    const forged = new URL(back.url)
    forged.searchParams.set("state", "forged-state")
    expect((await callback({ url: forged, cookie: back.cookie })).status).toBe(401)
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/test/callback?code=abc`)).status).toBe(401)
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/test/callback?error=access_denied`)).status).toBe(401)
  })

  it("a code exchanged with another attempt's state fails the PKCE/nonce checks (401)", async () => {
    const email = unique("swap")
    const first = await signInAs({ sub: `sub-${email}`, email })
    const second = await signInAs({ sub: `sub-${email}`, email })
    const swapped = new URL(first.url)
    swapped.searchParams.set("state", second.url.searchParams.get("state")!)
    expect((await callback({ url: swapped, cookie: second.cookie })).status).toBe(401)
  })

  it("lists the configured providers by name only", async () => {
    const res = await fetch(`${auth.url}/api/v1/auth/oidc/providers`)
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ items: [{ name: "test" }, { name: "slow" }, { name: "flaky" }] })
  })

  describe("browser sign-in (returnTo)", () => {
    const exchange = (code: string) =>
      fetch(`${auth.url}/api/v1/auth/oidc/exchange`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ code }),
      })

    const browserSignIn = async (returnTo: string) => {
      const email = unique("browser")
      Object.assign(op.account, { emailVerified: true, name: "Ada Lovelace", sub: `sub-${email}`, email })
      const back = await followToRedirect(
        `${auth.url}/api/v1/auth/oidc/test/authorize?returnTo=${encodeURIComponent(returnTo)}`,
        redirectUri,
      )
      return fetch(`${auth.url}/api/v1/auth/oidc/test/callback${back.url.search}`, {
        headers: { cookie: back.cookie },
        redirect: "manual",
      })
    }

    it("ends in a 303 to returnTo with a one-time code in the fragment, redeemed once for working tokens", async () => {
      const res = await browserSignIn("/console")
      expect(res.status).toBe(303)
      expect(res.headers.get("cache-control")).toBe("no-store")
      expect(res.headers.get("set-cookie")).toMatch(/^oidc_attempt=;.*Max-Age=0/)
      const location = res.headers.get("location") ?? ""
      const code = /^\/console#oidc_code=([A-Za-z0-9_-]{43})$/.exec(location)?.[1]
      expect(code, location).toBeDefined()
      const redeemed = await exchange(code!)
      expect(redeemed.status).toBe(200)
      expect(redeemed.headers.get("cache-control")).toBe("no-store")
      const tokens = (await redeemed.json()) as { access_token: string; refresh_token: string; token_type: string }
      expect(tokens.token_type).toBe("Bearer")
      expect(decodeJwt(tokens.access_token).sub).toMatch(/.+/)
      const loggedOutEverywhere = await fetch(`${auth.url}/api/v1/auth/logout-all`, {
        method: "POST",
        headers: { authorization: `Bearer ${tokens.access_token}` },
      })
      expect(loggedOutEverywhere.status).toBe(204)

      const again = await exchange(code!)
      expect(again.status).toBe(401)
      const problem = (await again.json()) as { code: string; detail: string }
      expect(problem.code).toBe("unauthorized")
      expect(problem.detail).toMatch(/unknown, used or expired/)
    })

    it("a refusal once the attempt is known comes back to returnTo as #oidc_error=<detail>, never a page of JSON", async () => {
      const started = async () => {
        const res = await fetch(`${auth.url}/api/v1/auth/oidc/test/authorize?returnTo=%2Fconsole`, {
          redirect: "manual",
        })
        expect(res.status).toBe(302)
        const state = new URL(res.headers.get("location") ?? "").searchParams.get("state") ?? ""
        return { state, cookie: (res.headers.get("set-cookie") ?? "").split(";")[0]! }
      }
      const back = (query: string, cookie: string) =>
        fetch(`${auth.url}/api/v1/auth/oidc/test/callback?${query}`, { headers: { cookie }, redirect: "manual" })
      // The provider refused (the user said no): the console is told why, and the attempt is used up.
      const denied = await started()
      const refused = await back(`error=access_denied&state=${denied.state}`, denied.cookie)
      expect(refused.status).toBe(303)
      const location = refused.headers.get("location") ?? ""
      expect(location).toMatch(/^\/console#oidc_error=/)
      expect(decodeURIComponent(location.split("#oidc_error=")[1]!)).toBe(
        "the identity provider refused the sign-in (access_denied)",
      )
      const again = await back(`error=access_denied&state=${denied.state}`, denied.cookie)
      expect(again.status).toBe(401)
      // Brought back in another browser (no binding cookie): refused, and said at returnTo.
      const elsewhere = await started()
      const other = await back(`code=whatever&state=${elsewhere.state}`, "")
      expect(other.status).toBe(303)
      expect(decodeURIComponent(other.headers.get("location") ?? "")).toBe(
        "/console#oidc_error=this sign-in was started in another browser; start again here",
      )
      // An unknown attempt has no returnTo to go back to: the problem itself.
      const unknown = await back("code=whatever&state=nope", "")
      expect(unknown.status).toBe(401)
      expect(unknown.headers.get("content-type")).toBe("application/problem+json")
    })

    it("a code redeemed twice at once gives the tokens to one of the two", async () => {
      const res = await browserSignIn("/console")
      const code = /#oidc_code=(.+)$/.exec(res.headers.get("location") ?? "")?.[1] ?? ""
      const answers = await Promise.all(Array.from({ length: 5 }, () => exchange(code)))
      expect(answers.map((a) => a.status).sort()).toEqual([200, 401, 401, 401, 401])
    })

    it("keeps the path and query of returnTo", async () => {
      const res = await browserSignIn("/console/users?page=2")
      expect(res.status).toBe(303)
      expect(res.headers.get("location")).toMatch(/^\/console\/users\?page=2#oidc_code=[A-Za-z0-9_-]{43}$/)
    })

    it("an unknown code is 401, a malformed one 400", async () => {
      expect((await exchange("A".repeat(43))).status).toBe(401)
      expect((await exchange("")).status).toBe(400)
      expect((await exchange("not base64url!")).status).toBe(400)
      expect((await exchange("A".repeat(201))).status).toBe(400)
    })

    it("refuses a returnTo that is not a path on this site (400 naming the field)", async () => {
      const refused = [
        "//evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "/\t/evil.example",
        "/console#x",
        "evil",
        `/${"a".repeat(2000)}`,
      ]
      for (const returnTo of refused) {
        const res = await fetch(
          `${auth.url}/api/v1/auth/oidc/test/authorize?returnTo=${encodeURIComponent(returnTo)}`,
          { redirect: "manual" },
        )
        expect(res.status, returnTo).toBe(400)
        expect(JSON.stringify(await res.json()), returnTo).toContain("returnTo")
      }
    })

    it("without returnTo the callback still answers the token response as JSON", async () => {
      const email = unique("json")
      const res = await callback(await signInAs({ sub: `sub-${email}`, email }))
      expect(res.status).toBe(200)
      expect(res.headers.get("location")).toBeNull()
      expect(((await res.json()) as { token_type: string }).token_type).toBe("Bearer")
    })
  })

  it("an unknown provider is 404, a malformed name 400", async () => {
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/nope/authorize`, { redirect: "manual" })).status).toBe(404)
    expect((await fetch(`${auth.url}/api/v1/auth/oidc/NOT_OK!/authorize`, { redirect: "manual" })).status).toBe(400)
  })

  it("concurrent first sign-ins with a provider share one discovery, which later sign-ins reuse", async () => {
    const authorize = () => fetch(`${auth.url}/api/v1/auth/oidc/slow/authorize`, { redirect: "manual" })
    const first = await Promise.all(Array.from({ length: 5 }, authorize))
    expect(first.map((res) => res.status)).toEqual([302, 302, 302, 302, 302])
    expect(new URL(first[0]!.headers.get("location")!).pathname).toBe("/slow/authorize")
    expect((await authorize()).status).toBe(302)
    expect(discoveries.slow).toBe(1)
  })

  it("a failed discovery is not kept: the sign-in is 503 and the next one discovers again", async () => {
    const authorize = () => fetch(`${auth.url}/api/v1/auth/oidc/flaky/authorize`, { redirect: "manual" })
    expect((await authorize()).status).toBe(503)
    expect((await authorize()).status).toBe(302)
    expect((await authorize()).status).toBe(302)
    expect(discoveries.flaky).toBe(2)
  })
})
