import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest"
import { type NpmStart, startNpmStart } from "../e2e/testing/npmStart.ts"
import { createPlatformClient, isProblem, ok, type Problem, ProblemError } from "./index.ts"

// The typed client against a real gateway: `npm start`'s embedded platform (PGlite, dev mailboxes, no real servers)
// on ports of its own, its settings the defaults the committed document was generated with.
const PASSWORD = "correct horse battery"
let platform: NpmStart | undefined
let url = ""

beforeAll(async () => {
  platform = await startNpmStart()
  url = platform.url
}, 120_000)

afterAll(() => platform?.stop(), 30_000)

describe("the typed client against a running gateway", () => {
  it("is generated from the document the gateway serves", async () => {
    const served = await (await fetch(`${url}/openapi.json`)).json()
    expect(served).toEqual(JSON.parse(readFileSync(join(import.meta.dirname, "openapi.json"), "utf8")))
  })

  it("reads public routes, typed", async () => {
    const client = createPlatformClient(url)
    const jwks = await ok(client.GET("/.well-known/jwks.json"))
    expect(jwks.keys.length).toBeGreaterThan(0)
    expectTypeOf(jwks.keys).toBeArray()
    const { data: plans, response } = await client.GET("/api/v1/billing/plans", { params: { query: { limit: "5" } } })
    expect(response.status).toBe(200)
    expect(Array.isArray(plans?.items)).toBe(true)
  })

  it("answers a refusal as the operation's typed problem+json", async () => {
    const anonymous = createPlatformClient(url)
    const { data, error, response } = await anonymous.GET("/api/v1/users/me")
    expect(data).toBeUndefined()
    expect(response.status).toBe(401)
    expect(response.headers.get("content-type")).toBe("application/problem+json")
    expect(error).toMatchObject({ code: "unauthorized", type: "urn:problem:unauthorized", status: 401 })
    expect(isProblem(error)).toBe(true)
    // The error is the union of the problems this operation documents, discriminated by `code`.
    expectTypeOf(error).toExtend<Problem | undefined>()
    if (error?.code === "unauthorized") expectTypeOf(error.type).toEqualTypeOf<"urn:problem:unauthorized">()

    // A request off the contract: 400 validation_failed naming the field.
    const refused = await anonymous.POST("/api/v1/auth/register", {
      body: { email: "not an address", password: PASSWORD, name: "Ada" },
    })
    expect(refused.response.status).toBe(400)
    const problem = refused.error
    expect(problem?.code).toBe("validation_failed")
    if (problem?.code !== "validation_failed") throw new Error(`not a validation problem: ${JSON.stringify(problem)}`)
    expect(problem.errors.map((e) => e.path)).toContain("email")

    // `ok` throws the problem as a ProblemError.
    const thrown = await ok(anonymous.GET("/api/v1/users/me")).catch((e: unknown) => e)
    expect(thrown).toBeInstanceOf(ProblemError)
    expect((thrown as ProblemError).status).toBe(401)
    expect((thrown as ProblemError).problem).toMatchObject({ code: "unauthorized" })
  })

  it("signs up, signs in and reads /users/me with the token it is given", async () => {
    const email = `client-${randomUUID().slice(0, 8)}@example.com`
    let token: string | undefined
    const client = createPlatformClient(url, { token: () => token })
    const registered = await ok(
      client.POST("/api/v1/auth/register", { body: { email, password: PASSWORD, name: "Ada" } }),
    )
    // The verification link from the dev mailbox (not part of the public API).
    const link = await platform!.waitFor(
      "the verification mail",
      async () => {
        const { items } = (await (await fetch(`${url}/_dev/mail`)).json()) as {
          items: Array<{ to: string; text: string }>
        }
        const mail = items.find((m) => m.to.includes(email))
        return mail === undefined ? undefined : /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail.text)?.[1]
      },
      20_000,
    )
    // 204: no body, so `ok` gives undefined (typed so).
    expect(await ok(client.POST("/api/v1/auth/verify-email", { body: { token: link } }))).toBeUndefined()
    const session = await ok(client.POST("/api/v1/auth/login", { body: { email, password: PASSWORD } }))
    token = session.access_token
    const me = await ok(client.GET("/api/v1/users/me"))
    expect(me).toMatchObject({ id: registered.id, email, emailVerified: true })
    const wrong = await client.POST("/api/v1/auth/login", { body: { email, password: "wrong password here" } })
    expect(wrong.response.status).toBe(401)
    expect(wrong.error?.code).toBe("invalid_credentials")
  })
})

describe("a failure that is not the platform's problem+json", () => {
  it("is an about:blank ProblemError with the status and the body as its detail", async () => {
    const client = createPlatformClient("http://gateway.invalid", {
      fetch: async () => new Response("upstream connect error", { status: 502, statusText: "Bad Gateway" }),
    })
    const thrown = await ok(client.GET("/api/v1/billing/plans")).catch((e: unknown) => e)
    expect(thrown).toBeInstanceOf(ProblemError)
    expect((thrown as ProblemError).problem).toEqual({
      type: "about:blank",
      title: "Bad Gateway",
      status: 502,
      detail: "upstream connect error",
    })
    expect((thrown as ProblemError).message).toBe("502 upstream connect error")
  })
})
