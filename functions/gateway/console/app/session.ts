// The signed-in session: tokens kept in this page's memory only (never in storage a script of another page could read;
// a reload asks to sign in again), the access token refreshed with the refresh token before it expires, and once
// more when the API answers 401 to a request made with it.
import { createPlatformClient, ok, type PlatformClient, ProblemError } from "../../../../client/index.ts"

interface Tokens {
  readonly access: string
  readonly refresh: string
}

let tokens: Tokens | undefined
let timer: ReturnType<typeof setTimeout> | undefined
let refreshing: Promise<boolean> | undefined
/** Why the last session ended on its own (shown on the sign-in form), if it did. */
let endedBecause: string | undefined
const listeners = new Set<() => void>()

const notify = () => {
  for (const listener of listeners) listener()
}

/** Calls `listener` whenever the session starts or ends; answers the unsubscribe. */
export const onSessionChange = (listener: () => void) => {
  listeners.add(listener)
  return () => listeners.delete(listener)
}

export const signedIn = () => tokens !== undefined
export const endReason = () => endedBecause

// Sign-in, refresh and logout go through a client without the retry below (a 401 there is an answer, not an expiry).
const bare: PlatformClient = createPlatformClient(location.origin)

const AUTH_PATHS = ["/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout", "/api/v1/auth/oidc/exchange"]

/** Fetch that, when a signed-in request is refused with 401, refreshes the session once and sends the request again. */
const retrying = async (request: Request): Promise<Response> => {
  const again = request.clone()
  const response = await fetch(request)
  if (response.status !== 401 || tokens === undefined || AUTH_PATHS.includes(new URL(request.url).pathname))
    return response
  if (!(await refresh())) return response
  again.headers.set("authorization", `Bearer ${tokens?.access ?? ""}`)
  return fetch(again)
}

/** The API, typed from the platform's OpenAPI document; sends the session's access token. */
export const api: PlatformClient = createPlatformClient(location.origin, {
  token: () => tokens?.access,
  fetch: retrying,
})

interface TokenResponse {
  readonly access_token: string
  readonly refresh_token: string
  readonly expires_in: number
}

const start = (answer: TokenResponse) => {
  tokens = { access: answer.access_token, refresh: answer.refresh_token }
  endedBecause = undefined
  clearTimeout(timer)
  // A minute before it expires (at least 5 s from now): the next request never waits for a refresh.
  timer = setTimeout(() => void refresh(), Math.max(5, answer.expires_in - 60) * 1000)
}

const end = (reason?: string) => {
  tokens = undefined
  endedBecause = reason
  clearTimeout(timer)
  notify()
}

/** Signs in with a password; throws the API's problem (`invalid_credentials`, `too_many_requests`, …). */
export const signIn = async (email: string, password: string) => {
  start(await ok(bare.POST("/api/v1/auth/login", { body: { email, password } })))
  notify()
}

/** The OpenID providers configured at the platform (none when OIDC is off). */
export const oidcProviders = async (): Promise<ReadonlyArray<string>> =>
  (await ok(bare.GET("/api/v1/auth/oidc/providers"))).items.map((provider) => provider.name)

/** Where a provider's button leads: its sign-in, back to this page (`#oidc_code=…`) afterwards. */
export const oidcSignInUrl = (provider: string) =>
  `/api/v1/auth/oidc/${encodeURIComponent(provider)}/authorize?returnTo=${encodeURIComponent(location.pathname)}`

/**
 * The one-time code the provider's sign-in left in this page's fragment, if any: taken out of the address at once (it
 * must not stay in the history), then redeemed for tokens. Throws the API's problem (a reused or expired code), or
 * the reason the sign-in was refused (`#oidc_error=`).
 */
export const finishOidcSignIn = async (): Promise<boolean> => {
  const fragment = new URLSearchParams(location.hash.slice(1))
  const code = fragment.get("oidc_code")
  const refused = fragment.get("oidc_error")
  if (code === null && refused === null) return false
  history.replaceState(null, "", location.pathname + location.search)
  // The sign-in failed once auth knew where to send the browser back: its reason (a problem's detail).
  if (code === null) throw new Error(`Sign-in failed: ${refused}`)
  start(await ok(bare.POST("/api/v1/auth/oidc/exchange", { body: { code } })))
  notify()
  return true
}

/**
 * A new access token from the refresh token (rotated on every use). Concurrent callers share one refresh; a refused
 * refresh (expired, reused, the session revoked) ends the session.
 */
export const refresh = (): Promise<boolean> => {
  const current = tokens
  if (current === undefined) return Promise.resolve(false)
  refreshing ??= ok(bare.POST("/api/v1/auth/refresh", { body: { refresh_token: current.refresh } }))
    .then((answer) => {
      start(answer)
      return true
    })
    .catch((error: unknown) => {
      end(error instanceof ProblemError ? "Your session ended: please sign in again." : undefined)
      return false
    })
    .finally(() => {
      refreshing = undefined
    })
  return refreshing
}

/** Ends the session at the server (its access tokens stop working at once), then here. */
export const signOut = async () => {
  const current = tokens
  end()
  if (current !== undefined)
    await bare.POST("/api/v1/auth/logout", {
      body: { refresh_token: current.refresh },
      headers: { authorization: `Bearer ${current.access}` },
    })
}
