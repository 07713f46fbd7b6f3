import { randomUUID } from "node:crypto"
import { ClientError, GraphQLClient } from "graphql-request"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NpmStart, startNpmStart } from "../../../e2e/testing/npmStart.ts"
import { freshEmail, PASSWORD, signUp } from "../console/testing/accounts.ts"
import { openConsole } from "../console/testing/browser.ts"
import { LIMITS } from "./Server.ts"

// POST /graphql against `npm start` (the embedded platform) with a real GraphQL client: every field goes through the
// gateway's admission and the function behind, as its REST operation does.
const adminEmail = freshEmail("gql-admin")
let platform: NpmStart
let admin: Awaited<ReturnType<typeof signUp>>
let member: Awaited<ReturnType<typeof signUp>>

beforeAll(async () => {
  platform = await startNpmStart({
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    RATE_LIMIT_USER_PER_MINUTE: "0",
    RATE_LIMIT_IP_PER_MINUTE: "0",
  })
  ;[admin, member] = await Promise.all([
    signUp(platform.url, adminEmail),
    signUp(platform.url, freshEmail("gql-member")),
  ])
}, 120_000)

afterAll(() => platform?.stop(), 30_000)

const client = (token?: string) =>
  new GraphQLClient(
    `${platform.url}/graphql`,
    token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
  )

interface Refusal {
  readonly status: number
  readonly errors: ReadonlyArray<{ message: string; extensions?: Record<string, unknown> }>
}

// The request's refusal: the HTTP status and the GraphQL errors of the answer (graphql-request throws ClientError).
const refusal = async (request: Promise<unknown>): Promise<Refusal> => {
  const error = await request.then(
    (data) => {
      throw new Error(`expected errors, got ${JSON.stringify(data)}`)
    },
    (e: unknown) => e,
  )
  if (!(error instanceof ClientError)) throw error
  return { status: error.response.status, errors: error.response.errors ?? [] }
}

const isoAgo = (seconds: number) => new Date(Date.now() - seconds * 1000).toISOString()

describe("POST /graphql", () => {
  it("refuses a mutation without a token: the problem's code in extensions", async () => {
    const refused = await refusal(
      client().request(`mutation { rolesCreate(input: { name: "nobody", permissions: [] }) { id } }`),
    )
    expect(refused.status).toBe(200)
    expect(refused.errors).toHaveLength(1)
    expect(refused.errors[0]).toMatchObject({
      extensions: { code: "unauthorized", status: 401 },
      path: ["rolesCreate"],
    })
  })

  it("refuses a plain member an admin operation: forbidden, naming the permission", async () => {
    const refused = await refusal(
      client(member.token).request(`mutation { rolesCreate(input: { name: "members-own", permissions: [] }) { id } }`),
    )
    expect(refused.errors[0]?.extensions).toMatchObject({ code: "forbidden", status: 403 })
    expect(refused.errors[0]?.message).toContain("authz.role.create")
  })

  it("answers invalid input with validation_failed and the field errors", async () => {
    const refused = await refusal(
      client().request(`mutation($input: SessionsRegisterInput!) { sessionsRegister(input: $input) { id } }`, {
        input: { email: "not an address", password: PASSWORD, name: "Ada" },
      }),
    )
    const { extensions } = refused.errors[0]!
    expect(extensions).toMatchObject({ code: "validation_failed", status: 400 })
    const fieldErrors = (extensions?.errors ?? []) as Array<{ path: string }>
    expect(fieldErrors.map((e) => e.path)).toContain("email")
    // Input GraphQL itself refuses (a missing required field) never reaches the function: 400 with the field named.
    const typed = await refusal(
      client().request(`mutation { sessionsLogin(input: { email: "a@example.com" }) { access_token } }`),
    )
    expect(typed.status).toBe(400)
    expect(typed.errors[0]?.message).toMatch(/password/)
  })

  it("refuses a query deeper than the limit before running it (400, the limit named)", async () => {
    const deep = `{ meGet { id ${"{ a ".repeat(LIMITS.depth)}${"} ".repeat(LIMITS.depth)}} }`
    const refused = await refusal(client(member.token).request(deep))
    expect(refused.status).toBe(400)
    expect(refused.errors.map((e) => e.message)).toContainEqual(
      expect.stringMatching(new RegExp(`depth limit of ${LIMITS.depth} exceeded`, "i")),
    )
  })

  it("refuses a query over the cost limit, and too many aliases (400, the limit named)", async () => {
    // The same field 600 times is one field to GraphQL, but 600 to count.
    const costly = `{ auditList { items { ${"id ".repeat(600)} } } }`
    const refused = await refusal(client(admin.token).request(costly))
    expect(refused.status).toBe(400)
    expect(refused.errors.map((e) => e.message)).toContainEqual(
      expect.stringMatching(new RegExp(`cost limit of ${LIMITS.cost} exceeded`, "i")),
    )
    const aliased = `{ ${Array.from({ length: LIMITS.aliases + 1 }, (_, i) => `a${i}: meGet { id }`).join(" ")} }`
    const many = await refusal(client(member.token).request(aliased))
    expect(many.status).toBe(400)
    expect(many.errors.map((e) => e.message)).toContainEqual(expect.stringMatching(/aliases limit/i))
  })

  it("counts each field against the route's rate limit, as a REST request (429 too_many_requests past it)", async () => {
    // POST /api/v1/auth/resend-verification allows 5 per minute per user (its own limit, exact): the sixth alias of
    // one mutation is refused at the gateway, the first five reach the function.
    const sends = Array.from({ length: 6 }, (_, i) => `s${i}: meResendVerification`).join(" ")
    const refused = await refusal(client(admin.token).request(`mutation { ${sends} }`))
    const limited = refused.errors.filter((e) => e.extensions?.code === "too_many_requests")
    expect(limited).toHaveLength(1)
    expect(limited[0]).toMatchObject({ path: ["s5"], extensions: { status: 429 } })
    expect(limited[0]?.extensions?.retryAfter).toBeGreaterThan(0)
  })

  it("auth: keys as a query, sign-in and refresh as mutations", async () => {
    const { keysJwks } = await client().request<{ keysJwks: { keys: Array<unknown> } }>(`{ keysJwks { keys } }`)
    expect(keysJwks.keys.length).toBeGreaterThan(0)
    const { sessionsLogin } = await client().request<{
      sessionsLogin: { access_token: string; refresh_token: string; token_type: string }
    }>(
      `mutation($email: String!, $password: String!) {
        sessionsLogin(input: { email: $email, password: $password }) { access_token refresh_token token_type }
      }`,
      { email: member.email, password: PASSWORD },
    )
    expect(sessionsLogin.token_type.toLowerCase()).toBe("bearer")
    const { sessionsRefresh } = await client().request<{ sessionsRefresh: { access_token: string } }>(
      `mutation($token: String!) { sessionsRefresh(input: { refresh_token: $token }) { access_token } }`,
      { token: sessionsLogin.refresh_token },
    )
    expect(sessionsRefresh.access_token).toMatch(/^ey/)
    // Signing out is a mutation whose REST answer has no body: true once done.
    const { sessionsLogout } = await client().request<{ sessionsLogout: boolean }>(
      `mutation($token: String!) { sessionsLogout(input: { refresh_token: $token }) }`,
      { token: sessionsLogin.refresh_token },
    )
    expect(sessionsLogout).toBe(true)
  })

  it("identity: the signed-in user as a query, a change of name as a mutation", async () => {
    const { meGet } = await client(member.token).request<{ meGet: { id: string; email: string } }>(
      `{ meGet { id email } }`,
    )
    expect(meGet).toEqual({ id: member.id, email: member.email })
    const { meUpdate } = await client(member.token).request<{ meUpdate: { name: string } }>(
      `mutation { meUpdate(input: { name: "Ada King" }) { name } }`,
    )
    expect(meUpdate.name).toBe("Ada King")
  })

  it("authz: an admin creates a role and lists it", async () => {
    const name = `gql-${randomUUID().slice(0, 8)}`
    const { rolesCreate } = await client(admin.token).request<{ rolesCreate: { id: string; permissions: string[] } }>(
      `mutation($name: String!) { rolesCreate(input: { name: $name, permissions: ["blog.post.create"] }) { id permissions } }`,
      { name },
    )
    expect(rolesCreate.permissions).toEqual(["blog.post.create"])
    const { rolesGet, mePermissions } = await client(admin.token).request<{
      rolesGet: { name: string }
      mePermissions: { items: Array<string> }
    }>(`query($id: String!) { rolesGet(id: $id) { name } mePermissions { items } }`, { id: rolesCreate.id })
    expect(rolesGet.name).toBe(name)
    expect(mePermissions.items.length).toBeGreaterThan(0)
  })

  it("blog: an admin creates a draft and reads it back by id", async () => {
    const title = `GraphQL ${randomUUID().slice(0, 8)}`
    const { writingCreate } = await client(admin.token).request<{
      writingCreate: { id: string; status: string; version: number }
    }>(
      `mutation($title: String!, $key: String) {
        writingCreate(input: { title: $title, body: "Hello", tags: ["graphql"] }, idempotencyKey: $key) { id status version }
      }`,
      { title, key: randomUUID() },
    )
    expect(writingCreate.status).toBe("draft")
    const { readingGet } = await client(admin.token).request<{ readingGet: { title: string; tags: string[] } }>(
      `query($id: String!) { readingGet(id: $id) { title tags } }`,
      { id: writingCreate.id },
    )
    expect(readingGet).toEqual({ title, tags: ["graphql"] })
    // Someone else's draft is not found: the function's own check, as over REST.
    const hidden = await refusal(
      client(member.token).request(`query($id: String!) { readingGet(id: $id) { title } }`, { id: writingCreate.id }),
    )
    expect(hidden.errors[0]?.extensions).toMatchObject({ code: "not_found", status: 404 })
  })

  it("billing: an admin creates a plan, and everyone lists the plans", async () => {
    const code = `gql-${randomUUID().slice(0, 8)}`
    const { plansCreate } = await client(admin.token).request<{ plansCreate: { id: string; amount: number } }>(
      `mutation($code: String!) {
        plansCreate(input: { code: $code, name: "GraphQL plan", amount: 1200, currency: "EUR", interval: "month" }) { id amount }
      }`,
      { code },
    )
    expect(plansCreate.amount).toBe(1200)
    const { plansList } = await client().request<{ plansList: { items: Array<{ id: string; code: string }> } }>(
      `{ plansList(limit: "100") { items { id code } nextCursor } }`,
    )
    expect(plansList.items).toContainEqual({ id: plansCreate.id, code })
  })

  it("analytics: events ingested by a mutation, the overview read by a query", async () => {
    const { ingestEvents } = await client(member.token).request<{ ingestEvents: { accepted: number } }>(
      `mutation($events: [IngestEventsEventsInput!]!) { ingestEvents(input: { events: $events }) { accepted duplicates } }`,
      { events: [{ id: randomUUID(), name: "gql.clicked", properties: { button: "buy" } }] },
    )
    expect(ingestEvents.accepted).toBe(1)
    const { reportsOverview } = await client(admin.token).request<{ reportsOverview: { signups: number } }>(
      `query($from: String!, $to: String!) { reportsOverview(from: $from, to: $to) { signups activeUsers { day } mrr { amount } } }`,
      { from: isoAgo(3_600), to: new Date(Date.now() + 60_000).toISOString() },
    )
    expect(reportsOverview.signups).toBeGreaterThanOrEqual(0)
  })

  it("audit: records listed and the chain verified (audit has reads only)", async () => {
    const { auditList, auditVerify } = await client(admin.token).request<{
      auditList: { items: Array<{ action: string }> }
      auditVerify: { ok: boolean }
    }>(`{ auditList(limit: "50") { items { id action actorId occurredAt } nextCursor } auditVerify }`)
    expect(Array.isArray(auditList.items)).toBe(true)
    expect(auditVerify.ok).toBe(true)
    // A member may not read the log: one field refused, the other still answered.
    const partial = await refusal(client(member.token).request(`{ meGet { id } auditList { items { id } } }`))
    expect(partial.errors[0]).toMatchObject({ path: ["auditList"], extensions: { code: "forbidden" } })
  })

  it("GraphiQL runs offline in a real browser: nothing from another origin, no CSP violation, a query answered", async () => {
    const browser = await openConsole(`${platform.url}/graphql`)
    try {
      const elsewhere: Array<string> = []
      browser.page.on("request", (request) => {
        const url = new URL(request.url())
        if (url.protocol.startsWith("http") && url.origin !== platform.url) elsewhere.push(url.href)
      })
      await browser.page.waitForSelector(".graphiql-container", { timeout: 20_000 })
      // Run the default query (no token: `meGet` answers unauthorized, from this origin, in the result pane).
      await browser.page.click(".graphiql-execute-button")
      await browser.page.waitForFunction("document.body.innerText.includes('unauthorized')", { timeout: 20_000 })
      expect(elsewhere).toEqual([])
      expect(browser.problems).toEqual([])
    } finally {
      await browser.close()
    }
  }, 60_000)

  it("is the schema of the document the gateway serves (no drift), and serves GraphiQL in development", async () => {
    const served = (await (await fetch(`${platform.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { operationId: string }>>
    }
    const { __schema } = await client().request<{
      __schema: { queryType: { fields: Array<{ name: string }> }; mutationType: { fields: Array<{ name: string }> } }
    }>(`{ __schema { queryType { fields { name } } mutationType { fields { name } } } }`)
    const fields = new Set([...__schema.queryType.fields, ...__schema.mutationType.fields].map((f) => f.name))
    const { operationsOf } = await import("./Schema.ts")
    expect([...fields].sort()).toEqual(
      operationsOf(served)
        .operations.map((o) => o.field)
        .sort(),
    )
    const page = await fetch(`${platform.url}/graphql`, { headers: { accept: "text/html" } })
    expect(page.status).toBe(200)
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'")
    expect(await page.text()).toContain("GraphiQL")
    const json = await fetch(`${platform.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ keysJwks { keys } }" }),
    })
    expect(json.headers.get("cache-control")).toBe("no-store")
    expect(json.headers.get("x-content-type-options")).toBe("nosniff")
  })

  it("answers a body that is not GraphQL with a clear 4xx, never a 5xx", async () => {
    for (const body of ["{", JSON.stringify({ query: 42 }), JSON.stringify({})]) {
      const res = await fetch(`${platform.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
        body,
      })
      expect(res.status, body).toBeGreaterThanOrEqual(400)
      expect(res.status, body).toBeLessThan(500)
      const answer = (await res.json()) as { errors: Array<{ message: string }> }
      expect(answer.errors[0]?.message.length).toBeGreaterThan(0)
    }
  })
})
