// Accounts for the console's browser tests on `npm start`: signed up and verified through the public API (the
// verification mail read from the dev mailbox, `GET /_dev/mail`), as a person would before opening the console.
import { randomUUID } from "node:crypto"

export const PASSWORD = "correct horse battery"

/** A fresh address at example.com, `prefix-<random>@example.com`. */
export const freshEmail = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}@example.com`

const json = async (url: string, path: string, body?: unknown, token?: string) => {
  const res = await fetch(`${url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${text}`)
  return text === "" ? undefined : JSON.parse(text)
}

/** The newest dev mail to `email` (embedded defaults only), waiting for it up to 10 s. */
const mailTo = async (url: string, email: string): Promise<string> => {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const { items } = (await json(url, "/_dev/mail")) as { items: Array<{ to: string; text: string }> }
    const mail = items.filter((m) => m.to === email).at(-1)
    if (mail !== undefined) return mail.text
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`no mail to ${email} within 10 s`)
}

/** Registers `email` with PASSWORD and verifies it; answers the user's id and an access token. */
export const signUp = async (url: string, email: string, name = "Ada Lovelace") => {
  const user = (await json(url, "/api/v1/auth/register", { email, password: PASSWORD, name })) as { id: string }
  const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(await mailTo(url, email))?.[1]
  if (token === undefined) throw new Error(`the verification mail to ${email} has no token`)
  await json(url, "/api/v1/auth/verify-email", { token })
  const login = (await json(url, "/api/v1/auth/login", { email, password: PASSWORD })) as { access_token: string }
  return { id: user.id, email, token: login.access_token }
}

/** Sends platform calls as a signed-in user (setup and checks beside what the browser does). */
export const apiAs = (url: string, token: string) => ({
  get: (path: string) => json(url, path, undefined, token),
  post: (path: string, body: unknown) => json(url, path, body, token),
})
