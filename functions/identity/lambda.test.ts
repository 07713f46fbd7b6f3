import type { APIGatewayProxyEventV2, Context } from "aws-lambda"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshSchema, sql } from "../../shared/testing/harness.ts"
import { apiGatewayEvent, lambdaContext } from "../../shared/testing/lambdaEvent.ts"

const event = apiGatewayEvent
const context = lambdaContext("identity")

const db = freshSchema("identity_lambda")
let handler: (
  e: APIGatewayProxyEventV2,
  c: Context,
) => Promise<{ statusCode?: number; body?: string; headers?: Record<string, unknown> }>
let userId: string

beforeAll(async () => {
  process.env.DB_SCHEMA = db.schema
  handler = (await import("./lambda.ts")).handler as never
  // The first invocation builds the app (migrations included); then insert a user directly.
  await handler(event("GET", "/healthz"), context)
  const rows = await sql(
    `INSERT INTO ${db.schema}.users (id, email, name) VALUES (gen_random_uuid(), $1, 'Lambda') RETURNING id`,
    [`lambda-${Date.now()}@example.com`],
  )
  userId = rows[0].id
})
afterAll(() => sql(`DROP SCHEMA ${db.schema} CASCADE`))

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

  it("answers bad input with a problem+json 4xx", async () => {
    const res = await handler(event("PATCH", `/api/v1/users/${userId}`, '{"name":'), context)
    expect(res.statusCode).toBe(400)
    expect(res.headers?.["content-type"]).toBe("application/problem+json")
    expect(JSON.parse(res.body ?? "")).toMatchObject({ code: "validation_failed" })
  })
})
