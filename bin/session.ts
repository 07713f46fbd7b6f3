// The signed-in session, kept between runs in the user's config directory (credentials.json, mode 0600 in a 0700
// folder): per platform URL the email, the access token with its expiry and the refresh token. The access token is
// refreshed (the refresh token rotates, so the new pair is written at once) when it is about to expire, and once
// more when the API answers 401 to it.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { createPlatformClient, ok, type PlatformClient } from "@platform/client"
import envPaths from "env-paths"
import { CliError, Exit } from "./exit.ts"

export interface StoredSession {
  readonly email: string
  readonly accessToken: string
  readonly refreshToken: string
  /** When the access token expires (RFC 3339). */
  readonly expiresAt: string
}

interface CredentialsFile {
  readonly sessions: Readonly<Record<string, StoredSession>>
}

interface TokenAnswer {
  readonly access_token: string
  readonly refresh_token: string
  readonly expires_in: number
}

/** The folder of the credentials file: PLATFORM_CONFIG_DIR, or the user's config directory for `platform`. */
export const configDir = () => process.env.PLATFORM_CONFIG_DIR || envPaths("platform").config

export const credentialsPath = () => join(configDir(), "credentials.json")

/** The URL a session is stored under: as given, without a trailing slash. */
export const sessionKey = (url: string) => url.replace(/\/+$/, "")

const readCredentials = (): CredentialsFile => {
  let text: string
  try {
    text = readFileSync(credentialsPath(), "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return { sessions: {} }
    throw error
  }
  try {
    const parsed = JSON.parse(text) as Partial<CredentialsFile>
    return { sessions: typeof parsed.sessions === "object" && parsed.sessions !== null ? parsed.sessions : {} }
  } catch {
    throw new CliError(Exit.error, `${credentialsPath()} is not valid JSON: delete it and run \`platform login\``)
  }
}

/** Writes the whole file through a temporary one created 0600, so it is never readable by others, not even briefly. */
const writeCredentials = (file: CredentialsFile) => {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 })
  const target = credentialsPath()
  const temporary = `${target}.${process.pid}.tmp`
  // One a crashed run of this pid left behind would make the exclusive create fail.
  rmSync(temporary, { force: true })
  writeFileSync(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: "wx" })
  renameSync(temporary, target)
}

export const storedSession = (url: string): StoredSession | undefined => readCredentials().sessions[sessionKey(url)]

const store = (url: string, session: StoredSession | undefined) => {
  const { [sessionKey(url)]: _previous, ...others } = readCredentials().sessions
  writeCredentials({ sessions: session === undefined ? others : { ...others, [sessionKey(url)]: session } })
}

/** Forgets the session stored for `url` (the file keeps the other platforms' sessions). */
export const forget = (url: string) => store(url, undefined)

const remember = (url: string, email: string, answer: TokenAnswer): StoredSession => {
  const session: StoredSession = {
    email,
    accessToken: answer.access_token,
    refreshToken: answer.refresh_token,
    expiresAt: new Date(Date.now() + answer.expires_in * 1000).toISOString(),
  }
  store(url, session)
  return session
}

/** Signs in with a password and stores the session; throws the API's problem (`invalid_credentials`, …). */
export const signIn = async (url: string, email: string, password: string): Promise<StoredSession> =>
  remember(url, email, await ok(createPlatformClient(url).POST("/api/v1/auth/login", { body: { email, password } })))

/** Ends the session at the platform (its access tokens stop working at once), having forgotten it here first. */
export const signOut = async (url: string, session: StoredSession) => {
  forget(url)
  const { response } = await createPlatformClient(url).POST("/api/v1/auth/logout", {
    body: { refresh_token: session.refreshToken },
    headers: { authorization: `Bearer ${session.accessToken}` },
  })
  // 401: the session had already ended (revoked, expired): signed out all the same.
  if (!response.ok && response.status !== 401) await ok({ response })
}

export const notSignedIn = (url: string) =>
  new CliError(Exit.auth, `not signed in to ${sessionKey(url)}`, ["run `platform login` first"])

// Refresh this long before the access token expires: a call never leaves with a token about to lapse.
const EARLY_MS = 30_000

/**
 * The API as the signed-in user of `url`: the stored session (refreshed first when it is about to expire), its access
 * token sent with every call, and a call answered 401 sent once more after a refresh. A refused refresh (the session
 * ended, the refresh token expired or reused) forgets the session and fails with exit code 3.
 */
export const openSession = async (url: string): Promise<{ api: PlatformClient; session: () => StoredSession }> => {
  let current = storedSession(url)
  if (current === undefined) throw notSignedIn(url)
  const bare = createPlatformClient(url)
  const refresh = async () => {
    const { email, refreshToken } = current!
    const { data, error, response } = await bare.POST("/api/v1/auth/refresh", { body: { refresh_token: refreshToken } })
    if (data !== undefined) {
      current = remember(url, email, data)
      return
    }
    if (response.status === 400 || response.status === 401) {
      forget(url)
      const detail = (error as { detail?: string } | undefined)?.detail ?? "refresh refused"
      throw new CliError(Exit.auth, `your session at ${sessionKey(url)} ended (${detail})`, [
        "run `platform login` again",
      ])
    }
    await ok({ data, error, response })
  }
  if (Date.parse(current.expiresAt) - Date.now() < EARLY_MS) await refresh()
  const retrying = async (request: Request): Promise<Response> => {
    const again = request.clone()
    const response = await fetch(request)
    if (response.status !== 401) return response
    await response.body?.cancel()
    await refresh()
    again.headers.set("authorization", `Bearer ${current!.accessToken}`)
    return fetch(again)
  }
  const api = createPlatformClient(url, { token: () => current?.accessToken, fetch: retrying })
  return { api, session: () => current! }
}
