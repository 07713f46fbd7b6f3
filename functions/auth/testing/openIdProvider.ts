import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import Provider from "oidc-provider"

/** The account the test provider signs in as (what a user would type into the provider's login form). */
export interface ProviderAccount {
  sub: string
  email: string
  emailVerified: boolean
  name: string
}

/**
 * A real OpenID Provider (the `oidc-provider` package) on 127.0.0.1 with one confidential client requiring PKCE. Its
 * login and consent screens are answered at once as `account` (set it before a sign-in).
 */
export const startOpenIdProvider = async (client: { clientId: string; clientSecret: string; redirectUri: string }) => {
  const account: ProviderAccount = { sub: "", email: "", emailVerified: true, name: "" }
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: client.clientId,
        client_secret: client.clientSecret,
        redirect_uris: [client.redirectUri],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_post",
      },
    ],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: () => ({ sub, email: account.email, email_verified: account.emailVerified, name: account.name }),
    }),
  })
  const handle = provider.callback()
  server.on("request", async (req, res) => {
    if (!req.url?.startsWith("/interaction/")) return handle(req, res)
    const details = await provider.interactionDetails(req, res)
    const grant = new provider.Grant({ accountId: account.sub, clientId: String(details.params.client_id) })
    grant.addOIDCScope(String(details.params.scope))
    const grantId = await grant.save()
    await provider.interactionFinished(
      req,
      res,
      { login: { accountId: account.sub }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    )
  })
  return { issuer, account, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

/** Where the provider sent the browser back (with `code` and `state`), and the browser's cookies at that point. */
export interface Redirected {
  readonly url: URL
  readonly cookie: string
}

/**
 * Plays the browser: follows redirects from `start` through the provider (keeping every cookie it is given) until it
 * is sent to `redirectUri`, and returns that URL without requesting it, with the cookies to send there.
 */
export const followToRedirect = async (start: string, redirectUri: string): Promise<Redirected> => {
  const cookies = new Map<string, string>()
  let next = start
  for (let hop = 0; hop < 10; hop++) {
    if (next.startsWith(redirectUri)) {
      return { url: new URL(next), cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; ") }
    }
    const res = await fetch(next, {
      redirect: "manual",
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; ") },
    })
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";")
      const at = pair!.indexOf("=")
      cookies.set(pair!.slice(0, at), pair!.slice(at + 1))
    }
    const location = res.headers.get("location")
    if (location === null) throw new Error(`${next} answered ${res.status} without a redirect: ${await res.text()}`)
    next = new URL(location, next).toString()
  }
  throw new Error("too many redirects")
}
