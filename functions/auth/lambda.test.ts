import type { APIGatewayProxyEventV2, Context } from "aws-lambda"
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshSchema, sql } from "../../shared/testing/harness.ts"
import { apiGatewayEvent as event, lambdaContext } from "../../shared/testing/lambdaEvent.ts"
import { randomKek } from "./testing/authHarness.ts"

const context = lambdaContext("auth")
const db = freshSchema("auth_lambda")
let handler: (
  e: APIGatewayProxyEventV2,
  c: Context,
) => Promise<{ statusCode?: number; body?: string; headers?: Record<string, unknown> }>

beforeAll(async () => {
  process.env.DB_SCHEMA = db.schema
  process.env.KEY_ENCRYPTION_KEY = Redacted.value(randomKek())
  handler = (await import("./lambda.ts")).handler as never
})
afterAll(() => sql(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`))

describe("auth lambda (middy over the same app)", () => {
  it("serves the JWKS from the keys it generated in the real database", async () => {
    const res = await handler(event("GET", "/.well-known/jwks.json"), context)
    expect(res.statusCode).toBe(200)
    const { keys } = JSON.parse(res.body ?? "") as { keys: Array<{ alg: string; kid: string }> }
    expect(keys).toHaveLength(1)
    expect(keys[0]?.alg).toBe("EdDSA")
    const [row] = await sql(`SELECT kid FROM ${db.schema}.signing_keys WHERE retired_at IS NULL`)
    expect(row?.kid).toBe(keys[0]?.kid)
  })

  it("answers bad input and unknown refresh tokens with problem+json 4xx", async () => {
    const bad = await handler(event("POST", "/api/v1/auth/login", '{"email":'), context)
    expect(bad.statusCode).toBe(400)
    expect(bad.headers?.["content-type"]).toBe("application/problem+json")
    const unknown = await handler(event("POST", "/api/v1/auth/refresh", '{"refresh_token":"nope"}'), context)
    expect(unknown.statusCode).toBe(401)
    expect(JSON.parse(unknown.body ?? "")).toMatchObject({ code: "unauthorized" })
  })
})
