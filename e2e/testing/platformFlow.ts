import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import { eventually } from "../../shared/testing/harness.ts"
import { runAnalyticsFlow } from "./analyticsFlow.ts"
import { runAttachmentsFlow } from "./attachmentsFlow.ts"
import { runBillingFlow } from "./billingFlow.ts"
import { runBlogFlow } from "./blogFlow.ts"

/** Where the flow runs: the gateway's URL, the bootstrap admin's address, and how to read a mail's text. */
export interface FlowTarget {
  readonly url: string
  readonly adminEmail: string
  /** The text of the newest mail to `email` (identity's mails and billing's receipts). */
  readonly mailText: (email: string) => Promise<string>
}

/**
 * The platform's main story, only through the gateway: sign up (verification mail), sign in, /users/me; the bootstrap
 * administrator grants a role (enforced within 1 s) and takes it back (refused within 1 s); logout (the access token
 * refused within 1 s); the audit log holds the logins, the failure, the role changes and its chain verifies; then the
 * blog's story (`runBlogFlow`) and its attachments (`runAttachmentsFlow`), billing's (`runBillingFlow`), and analytics'
 * (`runAnalyticsFlow`: its overview counts the sign-ups, logins, post and subscription of the flows before it).
 */
export const runPlatformFlow = async (target: FlowTarget) => {
  const { api, within, signUp } = platformClient(target)

  const user = await signUp(`user-${randomUUID().slice(0, 8)}@example.com`)
  const me = await api("GET", "/api/v1/users/me", { token: user.access_token })
  expect(me.status).toBe(200)
  expect(me.body).toMatchObject({ id: user.userId, emailVerified: true, status: "active" })

  // The bootstrap administrator gets the admin role once the address is verified.
  const admin = await signUp(target.adminEmail)
  await within("the bootstrap admin role", async () => {
    const permissions = await api("GET", "/api/v1/users/me/permissions", { token: admin.access_token })
    return permissions.status === 200 && permissions.body.items.includes("*")
  })

  const role = await api("POST", "/api/v1/roles", {
    token: admin.access_token,
    body: {
      name: `readers-${randomUUID().slice(0, 6)}`,
      description: "read users",
      permissions: ["identity.user.read"],
    },
  })
  expect(role.status).toBe(201)
  expect((await api("GET", "/api/v1/users", { token: user.access_token })).status).toBe(403)

  const assign = `/api/v1/users/${user.userId}/roles/${role.body.id}`
  expect((await api("PUT", assign, { token: admin.access_token })).status).toBe(204)
  const granted = await within("the grant to be enforced", async () => {
    return (await api("GET", "/api/v1/users", { token: user.access_token })).status === 200
  })
  expect(granted).toBeLessThanOrEqual(1_000)

  expect((await api("DELETE", assign, { token: admin.access_token })).status).toBe(204)
  const revoked = await within("the revocation to be enforced", async () => {
    return (await api("GET", "/api/v1/users", { token: user.access_token })).status === 403
  })
  expect(revoked).toBeLessThanOrEqual(1_000)

  const wrong = await api("POST", "/api/v1/auth/login", {
    body: { email: target.adminEmail, password: "not the password" },
  })
  expect(wrong.status).toBe(401)

  expect((await api("POST", "/api/v1/auth/logout", { body: { refresh_token: user.refresh_token } })).status).toBe(204)
  const refused = await within("the logged-out token to be refused", async () => {
    return (await api("GET", "/api/v1/users/me", { token: user.access_token })).status === 401
  })
  expect(refused).toBeLessThanOrEqual(1_000)

  // The audit log has the logins, the failure and the role changes, and its chain verifies.
  const actions = async () => {
    const events = await api("GET", "/api/v1/audit/events?limit=100", { token: admin.access_token })
    return events.status === 200 ? (events.body.items as Array<{ action: string; outcome: string }>) : []
  }
  await within(
    "the audit records",
    async () => {
      const seen = new Set((await actions()).map((e) => e.action))
      return [
        "auth.login.succeeded",
        "auth.login.failed",
        "authz.role.created",
        "authz.assignment.created",
        "authz.assignment.deleted",
        "auth.session.revoked",
      ].every((a) => seen.has(a))
    },
    20_000,
  )
  expect((await actions()).find((e) => e.action === "auth.login.failed")?.outcome).toBe("failure")
  const verified = await api("GET", "/api/v1/audit/verify", { token: admin.access_token })
  expect(verified.status).toBe(200)
  expect(verified.body.ok).toBe(true)

  // The first feature function: the blog's story as the administrator and an anonymous reader.
  await runBlogFlow(target.url, admin.access_token)
  await runAttachmentsFlow(target.url, admin.access_token)

  // Billing's story: the administrator's plans, a customer's card, subscriptions, invoices and payments.
  const customerEmail = `customer-${randomUUID().slice(0, 8)}@example.com`
  const customer = await signUp(customerEmail)
  await runBillingFlow(target.url, admin.access_token, customer.access_token, {
    email: customerEmail,
    mailText: target.mailText,
  })

  // Analytics' story: events ingested, reports for the administrator; three sign-ups (and their logins) above.
  await runAnalyticsFlow(target.url, admin.access_token, customer.access_token, { signups: 3, logins: 3 })
}

/**
 * One call to the platform at `url`, with a bearer token, headers and a JSON body when given; the answer's text, and
 * its body parsed when it is JSON.
 */
export const callApi = async (
  url: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) => {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: {
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...(options.body === undefined ? {} : { "content-type": "application/json" }),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  })
  const text = await res.text()
  const json = (res.headers.get("content-type") ?? "").includes("json") && text !== ""
  return { status: res.status, headers: res.headers, text, body: json ? JSON.parse(text) : undefined }
}

/** `callApi` bound to one platform's `url`. */
export const callerOf = (url: string) => (method: string, path: string, options?: Parameters<typeof callApi>[3]) =>
  callApi(url, method, path, options)

/** A client of the platform through the gateway: calls, polling, and signing up a verified account. */
export const platformClient = (target: FlowTarget) => {
  const PASSWORD = "correct horse battery"

  const api = (method: string, path: string, options: { token?: string; body?: unknown } = {}) =>
    callApi(target.url, method, path, options)

  const within = (what: string, check: () => Promise<boolean>, timeoutMs = 5_000) => eventually(what, check, timeoutMs)

  // Register, follow the verification link from the mail, sign in: an access token.
  const signUp = async (email: string) => {
    const registered = await api("POST", "/api/v1/auth/register", { body: { email, password: PASSWORD, name: "Ada" } })
    expect(registered.status).toBe(201)
    const text = await target.mailText(email)
    const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(text)?.[1]
    expect(token, text).toBeDefined()
    expect((await api("POST", "/api/v1/auth/verify-email", { body: { token } })).status).toBe(204)
    const login = await api("POST", "/api/v1/auth/login", { body: { email, password: PASSWORD } })
    expect(login.status).toBe(200)
    return { userId: registered.body.id as string, ...(login.body as { access_token: string; refresh_token: string }) }
  }

  return { api, within, signUp, password: PASSWORD }
}
