import { readFileSync } from "node:fs"
import { join } from "node:path"
import { getIntrospectionQuery } from "graphql/index.js"
import { describe, expect, it } from "vitest"
import type { RestCall } from "./Dispatch.ts"
import { LIMITS, make, schemas } from "./Server.ts"

// The GraphQL server as the gateway configures it, in development and in production, without a platform: the fields'
// REST requests are answered here.
const document = JSON.parse(readFileSync(join(import.meta.dirname, "../../../client/openapi.json"), "utf8"))
const schema = schemas()(document)

const post = async (development: boolean, query: string) => {
  const calls: Array<RestCall> = []
  const unexpected: Array<unknown> = []
  const yoga = make({ development, unexpected: (e) => unexpected.push(e) })
  const response = await yoga.handleRequest(
    new Request("http://gateway/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
      body: JSON.stringify({ query }),
    }),
    {
      schema,
      call: async (call: RestCall) => {
        calls.push(call)
        return { status: 200, contentType: "application/json", text: '{"id":"u1","email":"a@example.com"}' }
      },
    },
  )
  // Nothing here is a defect: an error Yoga had to mask would be one.
  expect(unexpected).toEqual([])
  return { status: response.status, body: (await response.json()) as { errors?: Array<{ message: string }> }, calls }
}

describe("the GraphQL server", () => {
  it("runs a field as its REST request", async () => {
    const { status, body, calls } = await post(false, "{ meGet { id email } }")
    expect(status).toBe(200)
    expect(body).toEqual({ data: { meGet: { id: "u1", email: "a@example.com" } } })
    expect(calls).toEqual([{ method: "GET", path: "/api/v1/users/me", headers: {}, body: undefined }])
  })

  it("suggests field names in development only", async () => {
    const dev = await post(true, "{ meGet { emial } }")
    expect(dev.body.errors?.[0]?.message).toContain('Did you mean "email"?')
    const production = await post(false, "{ meGet { emial } }")
    expect(production.status).toBe(400)
    expect(production.body.errors?.[0]?.message).not.toContain("Did you mean")
  })

  it("answers introspection in production too (the same contract /openapi.json publishes)", async () => {
    const { status, body } = await post(false, getIntrospectionQuery())
    expect(status).toBe(200)
    expect(body.errors).toBeUndefined()
  })

  it("refuses, before any field runs, a query over a limit: 400 naming it", async () => {
    const tokens = await post(false, `{ meGet { ${"id ".repeat(LIMITS.tokens)} } }`)
    expect(tokens.status).toBe(400)
    expect(tokens.body.errors?.[0]?.message).toContain(`Token limit of ${LIMITS.tokens} exceeded`)
    expect(tokens.calls).toEqual([])
    const directives = await post(false, `{ meGet { id ${"@include(if: true) ".repeat(LIMITS.directives + 1)} } }`)
    expect(directives.status).toBe(400)
    expect(directives.body.errors?.map((e) => e.message)).toContainEqual(
      expect.stringContaining(`Directives limit of ${LIMITS.directives} exceeded`),
    )
    expect(directives.calls).toEqual([])
  })
})
