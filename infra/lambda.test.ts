// Every function's bundled Lambda entry, copied alone with what its deployment package holds (lambda.mjs, its chunks,
// its native addons; no node_modules), invoked in its own Node process with API Gateway HTTP API (v2) events: a
// public route, a signed-in route, refused calls (401, 403) and /readyz, against the real Postgres.
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes, randomUUID } from "node:crypto"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { createInterface } from "node:readline"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startIdentityGrpc } from "../functions/auth/testing/authApp.ts"
import { tokenOptions } from "../functions/auth/testing/authHarness.ts"
import {
  type AuthzUnderTest,
  startAuthz,
  startIssuer,
  type TokenIssuer,
} from "../functions/authz/testing/authzHarness.ts"
import { assemble, build, discover } from "../scripts/build.ts"
import { freshSchema, sql } from "../shared/testing/harness.ts"
import { apiGatewayEvent } from "../shared/testing/lambdaEvent.ts"

interface Result {
  readonly statusCode: number
  readonly headers: Record<string, string>
  readonly body: string
}

// The Lambda runtime's part: import the handler once, then invoke it per event (one JSON line in on stdin, one out on
// fd 3: the function's own logs keep stdout).
const RUNTIME = `
import { writeSync } from "node:fs"
import { createInterface } from "node:readline"
const { handler } = await import(process.cwd() + "/lambda.mjs")
const context = { functionName: "test", awsRequestId: "req", getRemainingTimeInMillis: () => 30000 }
for await (const line of createInterface({ input: process.stdin })) {
  const result = await handler(JSON.parse(line), context).catch((e) => ({ statusCode: -1, body: String(e?.stack ?? e) }))
  writeSync(3, JSON.stringify(result) + "\\n")
}`

const hasNodeModulesAbove = (dir: string): boolean =>
  existsSync(join(dir, "node_modules")) || (dirname(dir) !== dir && hasNodeModulesAbove(dirname(dir)))

/** One Lambda "instance": the package in its folder, a Node process invoking it. */
const startLambda = (dir: string, env: Record<string, string>) => {
  const child: ChildProcess = spawn(process.execPath, ["--input-type=module", "-e", RUNTIME], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", LOG_LEVEL: "warn", ...env },
    stdio: ["pipe", "pipe", "pipe", "pipe"],
  })
  let stderr = ""
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  child.stdout!.resume()
  const lines = createInterface({ input: child.stdio[3] as NodeJS.ReadableStream })[Symbol.asyncIterator]()
  const invoke = async (
    method: string,
    path: string,
    options: { body?: unknown; token?: string } = {},
  ): Promise<Result> => {
    const event = apiGatewayEvent(method, path, options.body === undefined ? undefined : JSON.stringify(options.body))
    if (options.token) event.headers.authorization = `Bearer ${options.token}`
    child.stdin!.write(`${JSON.stringify(event)}\n`)
    const next = await lines.next()
    if (next.done) throw new Error(`the Lambda process ended: ${stderr}`)
    const result = JSON.parse(next.value) as Result
    if (result.statusCode === -1) throw new Error(`the handler threw: ${result.body}`)
    return result
  }
  return { invoke, stop: () => child.kill("SIGKILL") }
}

const names = discover().filter((name) => existsSync(join("functions", name, "lambda.ts")))
let buildDir = ""
let packagesDir = ""
let issuer: TokenIssuer
let authz: AuthzUnderTest
let identityGrpc: Awaited<ReturnType<typeof startIdentityGrpc>>
const lambdas: Array<ReturnType<typeof startLambda>> = []
const schemas: Array<string> = []

beforeAll(async () => {
  buildDir = mkdtempSync(join(tmpdir(), "lambda-build-"))
  packagesDir = mkdtempSync(join(tmpdir(), "lambda-run-"))
  const reports = await build(names, { outdir: buildDir })
  for (const report of reports) await assemble(report, "lambda", join(packagesDir, report.name))
  issuer = await startIssuer()
  authz = await startAuthz({ issuer })
  identityGrpc = await startIdentityGrpc()
}, 180_000)

afterAll(async () => {
  for (const lambda of lambdas) lambda.stop()
  await authz?.close()
  await issuer?.close()
  await identityGrpc?.running.close()
  for (const schema of schemas) await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  for (const dir of [buildDir, packagesDir]) if (dir) rmSync(dir, { recursive: true, force: true })
})

// A function's Lambda with what a deployment gives it (its own schema unless told).
const lambdaOf = (name: string, schema = freshSchema(`lambda_${name}`).schema) => {
  schemas.push(schema)
  const lambda = startLambda(join(packagesDir, name), {
    DATABASE_URL: process.env.DATABASE_URL!,
    DB_SCHEMA: schema,
    JWT_ISSUER: tokenOptions.issuer,
    JWT_AUDIENCE: tokenOptions.audience,
    AUTH_JWKS_URL: issuer.jwksUrl.toString(),
    AUTHZ_GRPC_URL: authz.grpcAddress,
    IDENTITY_GRPC_URL: identityGrpc.address,
    KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
  })
  lambdas.push(lambda)
  return lambda
}

const json = (result: Result) => JSON.parse(result.body) as Record<string, any>

describe("every function's bundled Lambda entry", () => {
  it("covers every function with a lambda.ts, packaged without node_modules", () => {
    expect(names).toEqual(["analytics", "audit", "auth", "authz", "billing", "blog", "identity"])
    for (const name of names) expect(hasNodeModulesAbove(join(packagesDir, name))).toBe(false)
  })

  it("analytics: readiness, its contract, an ingestion counted once, its reports for an administrator, 401", async () => {
    const analytics = lambdaOf("analytics")
    expect((await analytics.invoke("GET", "/readyz")).statusCode).toBe(200)
    expect((await analytics.invoke("GET", "/openapi.json")).statusCode).toBe(200)
    const event = { id: randomUUID(), name: "lambda_check", properties: { k: "v" } }
    const ingested = await analytics.invoke("POST", "/api/v1/analytics/events", { body: { events: [event, event] } })
    expect(ingested.statusCode, ingested.body).toBe(202)
    expect(json(ingested)).toEqual({ accepted: 1, duplicates: 1 })
    // No rollup worker in a Lambda: the report reads the raw event past the watermark.
    const to = new Date(Date.now() + 60_000).toISOString()
    const from = new Date(Date.now() - 3_600_000).toISOString()
    const top = await analytics.invoke(
      "GET",
      `/api/v1/analytics/top?event=lambda_check&property=k&from=${from}&to=${to}`,
      {
        token: authz.admin.authorization!.slice(7),
      },
    )
    expect(top.statusCode, top.body).toBe(200)
    expect(json(top)).toEqual({ items: [{ value: "v", count: 1 }] })
    expect(
      (await analytics.invoke("GET", `/api/v1/analytics/top?event=a&property=k&from=${from}&to=${to}`)).statusCode,
    ).toBe(401)
  })

  it("audit: readiness, its contract, the log for an administrator, 401 and 403 otherwise", async () => {
    const audit = lambdaOf("audit")
    expect((await audit.invoke("GET", "/readyz")).statusCode).toBe(200)
    expect((await audit.invoke("GET", "/openapi.json")).statusCode).toBe(200)
    const verify = await audit.invoke("GET", "/api/v1/audit/verify", { token: authz.admin.authorization!.slice(7) })
    expect(verify.statusCode, verify.body).toBe(200)
    expect(json(verify)).toMatchObject({ ok: true })
    const anonymous = await audit.invoke("GET", "/api/v1/audit/events")
    expect(anonymous.statusCode).toBe(401)
    expect(anonymous.headers["www-authenticate"]).toBe("Bearer")
    const user = await issuer.issue(randomUUID())
    expect((await audit.invoke("GET", "/api/v1/audit/events", { token: user })).statusCode).toBe(403)
  })

  it("billing: readiness, its contract, the public plans, a plan created by an administrator, 401 and 403", async () => {
    const billing = lambdaOf("billing")
    expect((await billing.invoke("GET", "/readyz")).statusCode).toBe(200)
    expect((await billing.invoke("GET", "/openapi.json")).statusCode).toBe(200)
    const empty = await billing.invoke("GET", "/api/v1/billing/plans")
    expect(empty.statusCode, empty.body).toBe(200)
    expect(json(empty)).toEqual({ items: [], nextCursor: null })
    // The harness's administrator holds `*` in authz: billing asks authz over gRPC, as its own function.
    const admin = await issuer.issue(authz.adminId)
    const plan = { code: "lambda-pro", name: "Pro", amount: 1999, currency: "EUR", interval: "month" }
    const created = await billing.invoke("POST", "/api/v1/billing/plans", { token: admin, body: plan })
    expect(created.statusCode, created.body).toBe(201)
    const listed = await billing.invoke("GET", "/api/v1/billing/plans")
    expect(json(listed).items).toEqual([json(created)])
    expect((await billing.invoke("POST", "/api/v1/billing/plans", { body: plan })).statusCode).toBe(401)
    const stranger = await issuer.issue(randomUUID())
    expect((await billing.invoke("POST", "/api/v1/billing/plans", { token: stranger, body: plan })).statusCode).toBe(
      403,
    )
  })

  it("blog: readiness, its contract, the public list, a post written and scheduled (the job enqueued), 401 and 403", async () => {
    const schema = freshSchema("lambda_blog").schema
    // Its job store too (`<schema>_jobs`), made by the first enqueue.
    schemas.push(`${schema}_jobs`)
    const blog = lambdaOf("blog", schema)
    expect((await blog.invoke("GET", "/readyz")).statusCode).toBe(200)
    expect((await blog.invoke("GET", "/openapi.json")).statusCode).toBe(200)
    const list = await blog.invoke("GET", "/api/v1/blog/posts")
    expect(list.statusCode, list.body).toBe(200)
    expect(json(list)).toEqual({ items: [], nextCursor: null })
    // The harness's administrator holds `*` in authz: blog asks authz over gRPC, as its own function.
    const admin = await issuer.issue(authz.adminId)
    const created = await blog.invoke("POST", "/api/v1/blog/posts", { token: admin, body: { title: "From a Lambda" } })
    expect(created.statusCode, created.body).toBe(201)
    const post = json(created)
    // Scheduling enqueues the publish job from an invocation (the job store installed on first use, no workers).
    const publishAt = new Date(Date.now() + 3_600_000).toISOString()
    const scheduled = await blog.invoke("POST", `/api/v1/blog/posts/${post.id}/publish`, {
      token: admin,
      body: { publishAt },
    })
    expect(scheduled.statusCode, scheduled.body).toBe(200)
    expect(json(scheduled).status).toBe("scheduled")
    expect((await blog.invoke("GET", `/api/v1/blog/posts/${post.slug}`)).statusCode).toBe(404)
    expect((await blog.invoke("PATCH", `/api/v1/blog/posts/${post.id}`, { body: { title: "x" } })).statusCode).toBe(401)
    const stranger = await issuer.issue(randomUUID())
    const refused = await blog.invoke("POST", "/api/v1/blog/posts", { token: stranger, body: { title: "x" } })
    expect(refused.statusCode).toBe(403)
  })

  it("authz: readiness, a signed-in caller's grants, 401 and 403 on the admin routes", async () => {
    // On the harness's schema, where its administrator holds the admin role.
    const lambda = lambdaOf("authz", authz.db.schema)
    expect((await lambda.invoke("GET", "/readyz")).statusCode).toBe(200)
    expect((await lambda.invoke("GET", "/openapi.json")).statusCode).toBe(200)
    const user = await issuer.issue(randomUUID())
    const mine = await lambda.invoke("GET", "/api/v1/users/me/permissions", { token: user })
    expect(mine.statusCode, mine.body).toBe(200)
    expect(json(mine)).toEqual({ items: [] })
    const role = { name: `l-${randomUUID().slice(0, 8)}`, permissions: ["audit.*"] }
    expect((await lambda.invoke("POST", "/api/v1/roles", { body: role })).statusCode).toBe(401)
    expect((await lambda.invoke("POST", "/api/v1/roles", { body: role, token: user })).statusCode).toBe(403)
    const created = await lambda.invoke("POST", "/api/v1/roles", {
      body: role,
      token: authz.admin.authorization!.slice(7),
    })
    expect(created.statusCode, created.body).toBe(201)
  })

  it("identity: readiness, a public route, the signed-in profile, 401 and 403 on the admin routes", async () => {
    const schema = freshSchema("lambda_identity").schema
    const identity = lambdaOf("identity", schema)
    expect((await identity.invoke("GET", "/readyz")).statusCode).toBe(200)
    const reset = await identity.invoke("POST", "/api/v1/auth/password-reset", { body: { email: "no@example.com" } })
    expect(reset.statusCode, reset.body).toBe(202)
    const [row] = await sql(
      `INSERT INTO ${schema}.users (id, email, name) VALUES (gen_random_uuid(), $1, 'Lambda') RETURNING id`,
      [`lambda-${randomUUID().slice(0, 8)}@example.com`],
    )
    const user = await issuer.issue(row.id)
    const me = await identity.invoke("GET", "/api/v1/users/me", { token: user })
    expect(me.statusCode, me.body).toBe(200)
    expect(json(me)).toMatchObject({ id: row.id, name: "Lambda" })
    expect((await identity.invoke("GET", "/api/v1/users")).statusCode).toBe(401)
    expect((await identity.invoke("GET", "/api/v1/users", { token: user })).statusCode).toBe(403)
    const listed = await identity.invoke("GET", "/api/v1/users", { token: authz.admin.authorization!.slice(7) })
    expect(listed.statusCode, listed.body).toBe(200)
  })

  it("auth: readiness, the JWKS, register and login (through identity's gRPC), logout-all signed in, 401 without", async () => {
    const auth = lambdaOf("auth")
    expect((await auth.invoke("GET", "/readyz")).statusCode).toBe(200)
    const jwks = await auth.invoke("GET", "/.well-known/jwks.json")
    expect(jwks.statusCode).toBe(200)
    expect(json(jwks).keys.length).toBeGreaterThan(0)
    const email = `lambda-${randomUUID().slice(0, 8)}@example.com`
    const password = "correct horse battery"
    const registered = await auth.invoke("POST", "/api/v1/auth/register", { body: { email, password, name: "L" } })
    expect(registered.statusCode, registered.body).toBe(201)
    const login = await auth.invoke("POST", "/api/v1/auth/login", { body: { email, password } })
    expect(login.statusCode, login.body).toBe(200)
    expect((await auth.invoke("POST", "/api/v1/auth/logout-all")).statusCode).toBe(401)
    const out = await auth.invoke("POST", "/api/v1/auth/logout-all", { token: json(login).access_token })
    expect(out.statusCode, out.body).toBe(204)
  })
})
