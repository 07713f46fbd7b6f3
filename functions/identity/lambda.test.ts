import type { APIGatewayProxyEventV2, Context } from "aws-lambda"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshSchema, sql } from "../../shared/testing/harness.ts"
import { apiGatewayEvent, lambdaContext } from "../../shared/testing/lambdaEvent.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { tokenOptions } from "../auth/testing/authHarness.ts"
import { type AuthzUnderTest, startAuthz, startIssuer, type TokenIssuer } from "../authz/testing/authzHarness.ts"

// The admin routes are enforced by the function itself: tokens from auth's real keys, permissions from a real authz.
let issuer: TokenIssuer
let authz: AuthzUnderTest
const event = (method: string, rawPath: string, body?: string, headers: Record<string, string> = authz.admin) => {
  const e = apiGatewayEvent(method, rawPath, body)
  return { ...e, headers: { ...e.headers, ...headers } }
}
const context = lambdaContext("identity")

const db = freshSchema("identity_lambda")
let handler: (
  e: APIGatewayProxyEventV2,
  c: Context,
) => Promise<{ statusCode?: number; body?: string; headers?: Record<string, unknown> }>
let userId: string

beforeAll(async () => {
  // The Lambda reads its configuration from the environment, which Effect takes in once: all of it is set first.
  const [jwksPort, grpcPort] = [await freePort(), await freePort()]
  process.env.DB_SCHEMA = db.schema
  process.env.AUTH_JWKS_URL = `http://127.0.0.1:${jwksPort}/.well-known/jwks.json`
  process.env.AUTHZ_GRPC_URL = `127.0.0.1:${grpcPort}`
  process.env.JWT_ISSUER = tokenOptions.issuer
  process.env.JWT_AUDIENCE = tokenOptions.audience
  issuer = await startIssuer(jwksPort)
  authz = await startAuthz({ issuer, grpcPort })
  handler = (await import("./lambda.ts")).handler as never
  // The first invocation builds the app (migrations included); then insert a user directly.
  await handler(event("GET", "/healthz"), context)
  const rows = await sql(
    `INSERT INTO ${db.schema}.users (id, email, name) VALUES (gen_random_uuid(), $1, 'Lambda') RETURNING id`,
    [`lambda-${Date.now()}@example.com`],
  )
  userId = rows[0].id
})
afterAll(async () => {
  await sql(`DROP SCHEMA ${db.schema} CASCADE`)
  await authz?.close()
  await issuer?.close()
})

describe("identity lambda (middy over the same app)", () => {
  it("answers /healthz", async () => {
    const res = await handler(event("GET", "/healthz"), context)
    expect(res.statusCode).toBe(200)
    expect(res.headers?.["x-request-id"]).toBe("lambda-req-1")
  })

  it("serves GET /api/v1/users/{id} from the real database", async () => {
    const res = await handler(event("GET", `/api/v1/users/${userId}`), context)
    expect(res.statusCode).toBe(200)
    expect(JSON.parse(res.body ?? "")).toMatchObject({ id: userId, name: "Lambda" })
  })

  it("refuses an admin route without a token (401) and to a user without the permission (403)", async () => {
    const anonymous = await handler(event("GET", `/api/v1/users/${userId}`, undefined, {}), context)
    expect(anonymous.statusCode).toBe(401)
    expect(anonymous.headers?.["www-authenticate"]).toBe("Bearer")
    const user = await issuer.issue(userId)
    const refused = await handler(
      event("GET", `/api/v1/users/${userId}`, undefined, { authorization: `Bearer ${user}` }),
      context,
    )
    expect(refused.statusCode).toBe(403)
  })

  it("answers bad input with a problem+json 4xx", async () => {
    const res = await handler(event("PATCH", `/api/v1/users/${userId}`, '{"name":'), context)
    expect(res.statusCode).toBe(400)
    expect(res.headers?.["content-type"]).toBe("application/problem+json")
    expect(JSON.parse(res.body ?? "")).toMatchObject({ code: "validation_failed" })
  })
})
