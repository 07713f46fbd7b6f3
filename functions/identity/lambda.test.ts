import type { APIGatewayProxyEventV2, Context } from "aws-lambda"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freshSchema, sql } from "../../shared/testing/harness.ts"

// A real API Gateway HTTP API (payload v2) event, as Lambda delivers it.
const event = (method: string, rawPath: string, body?: string): APIGatewayProxyEventV2 => ({
  version: "2.0",
  routeKey: "$default",
  rawPath,
  rawQueryString: "",
  headers: {
    accept: "application/json",
    "content-type": "application/json",
    host: "abc123.execute-api.eu-west-1.amazonaws.com",
    "x-request-id": "lambda-req-1",
    ...(body ? { "content-length": String(Buffer.byteLength(body)) } : {}),
  },
  requestContext: {
    accountId: "123456789012",
    apiId: "abc123",
    domainName: "abc123.execute-api.eu-west-1.amazonaws.com",
    domainPrefix: "abc123",
    http: { method, path: rawPath, protocol: "HTTP/1.1", sourceIp: "203.0.113.9", userAgent: "curl/8" },
    requestId: "Jx1-abcdEFGH=",
    routeKey: "$default",
    stage: "$default",
    time: "25/Nov/2026:20:00:00 +0000",
    timeEpoch: 1795636800000,
  },
  ...(body !== undefined ? { body, isBase64Encoded: false } : { isBase64Encoded: false }),
})

const context = { functionName: "identity", awsRequestId: "req", getRemainingTimeInMillis: () => 30_000 } as Context

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
