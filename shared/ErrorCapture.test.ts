// The error bus's capture points, each against a real HTTP capture server parsing Sentry envelopes
// (testing/sentryCapture.ts): a function's HTTP routes (a defect reported once with its ids, a 4xx or an outage's 503
// never), its job's last attempt (real Postgres), a gRPC server's unexpected failure, an event handler's dead letter
// (real Postgres), and an unhandled rejection in a function's own process, which reaches the endpoint before the
// process exits. Also the development listing, and its absence in production.
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { once } from "node:events"
import { fileURLToPath } from "node:url"
import { Effect, Exit, Layer, Option, Redacted, Scope } from "effect"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { IdentityServiceClient, IdentityServiceService } from "../proto/gen/identity/v1/identity.ts"
import * as CloudEvent from "./CloudEvent.ts"
import { Db } from "./Db.ts"
import * as ErrorBus from "./ErrorBus.ts"
import { consume } from "./EventBus.ts"
import * as GrpcClient from "./GrpcClient.ts"
import * as GrpcServer from "./GrpcServer.ts"
import * as Lambda from "./Lambda.ts"
import { NotFound } from "./Problem.ts"
import { RequestId } from "./RequestContext.ts"
import { ServiceIdentity } from "./ServiceIdentity.ts"
import { type AppUnderTest, startApp } from "./testing/appHarness.ts"
import { serviceDb } from "./testing/busHarness.ts"
import { app, SECRET_EMAIL, SECRET_JWT } from "./testing/faultsApp.ts"
import { eventually, sql } from "./testing/harness.ts"
import { apiGatewayEvent, lambdaContext } from "./testing/lambdaEvent.ts"
import { freePort } from "./testing/ports.ts"
import { productionEnv } from "./testing/productionEnv.ts"
import { type CapturedEvent, type SentryCapture, startSentryCapture } from "./testing/sentryCapture.ts"

let capture: SentryCapture
let faults: AppUnderTest
const schema = `t_faults_${randomBytes(4).toString("hex")}`

beforeAll(async () => {
  capture = await startSentryCapture()
  faults = await startApp(app, { env: { SENTRY_DSN: capture.dsn, DB_SCHEMA: schema } })
}, 60_000)
afterAll(async () => {
  await faults?.close()
  await capture?.close()
  await sql(`DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
})

const eventsWhere = (predicate: (event: CapturedEvent) => boolean) => capture.events().filter(predicate)

// The events matching `predicate`, once at least one has arrived.
const arrived = async (what: string, predicate: (event: CapturedEvent) => boolean, timeoutMs = 20_000) => {
  await eventually(what, async () => eventsWhere(predicate).length > 0, timeoutMs)
  return eventsWhere(predicate)
}

const withRequestId = (id: string) => (event: CapturedEvent) => event.tags.request_id === id

const hex = (bytes: number) => randomBytes(bytes).toString("hex")

describe("HTTP", () => {
  it("reports a route that dies once: function, route template, request id, trace and span ids; no email, no JWT", async () => {
    const traceId = hex(16)
    const parentSpanId = hex(8)
    const response = await fetch(`${faults.url}/api/v1/faults/die/42`, {
      headers: { "x-request-id": "die-1", traceparent: `00-${traceId}-${parentSpanId}-01` },
    })
    expect(response.status).toBe(500)
    expect(response.headers.get("content-type")).toBe("application/problem+json")
    const [event] = await arrived("the dying route's report", withRequestId("die-1"))
    expect(event).toMatchObject({
      level: "error",
      release: "faults@0.3.1",
      environment: "test",
      transaction: "/api/v1/faults/die/:id",
      fingerprint: ["TypeError", "/api/v1/faults/die/:id"],
      tags: {
        service: "faults",
        origin: "http",
        route: "/api/v1/faults/die/:id",
        request_id: "die-1",
        trace_id: traceId,
      },
      contexts: { trace: { trace_id: traceId } },
    })
    // The server's own span (a child of the caller's), not the caller's.
    expect(event!.tags.span_id).toMatch(/^[0-9a-f]{16}$/)
    expect(event!.tags.span_id).not.toBe(parentSpanId)
    expect(event!.exception.values.at(-1)!.value).toBe("ledger 42 of [email] unreadable with [jwt]")
    for (const envelope of capture.envelopes) {
      expect(envelope.raw).not.toContain(SECRET_EMAIL)
      expect(envelope.raw).not.toContain(SECRET_JWT)
    }
    // Once: a later defect's report arrives, and still one of the first.
    await fetch(`${faults.url}/api/v1/faults/die/43`, { headers: { "x-request-id": "die-2" } })
    await arrived("the second report", withRequestId("die-2"))
    expect(eventsWhere(withRequestId("die-1"))).toHaveLength(1)
  })

  it("never reports the caller's mistakes (404, 400, 405) nor an outage's 503", async () => {
    const asked = [
      { id: "not-found", path: "/api/v1/faults/missing", status: 404 },
      { id: "no-route", path: "/api/v1/faults/nowhere", status: 404 },
      { id: "invalid", path: "/api/v1/faults/strict", status: 400, body: { n: "not a number" } },
      { id: "wrong-method", path: "/api/v1/faults/strict", status: 405, method: "PUT" },
      { id: "outage", path: "/api/v1/faults/outage", status: 503 },
    ]
    for (const { id, path, status, body, method } of asked) {
      const response = await fetch(`${faults.url}${path}`, {
        method: method ?? (body === undefined ? "GET" : "POST"),
        headers: { "x-request-id": id, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
      expect(response.status, id).toBe(status)
    }
    // A defect after them is reported: had any of them been, it would have arrived by then.
    await fetch(`${faults.url}/api/v1/faults/die/after`, { headers: { "x-request-id": "after-mistakes" } })
    await arrived("the report after the mistakes", withRequestId("after-mistakes"))
    for (const { id } of asked) expect(eventsWhere(withRequestId(id)), id).toEqual([])
  })

  it("lists the function's recent reports at GET /_dev/errors outside production, newest first", async () => {
    await fetch(`${faults.url}/api/v1/faults/die/listed`, { headers: { "x-request-id": "listed" } })
    const { items } = (await (await fetch(`${faults.url}/_dev/errors`)).json()) as { items: Array<CapturedEvent> }
    expect(items[0]).toMatchObject({ tags: { request_id: "listed", service: "faults" } })
    const times = items.map((item) => (item as unknown as { timestamp: number }).timestamp)
    expect(times).toEqual([...times].sort((a, b) => b - a))
    expect(JSON.stringify(items)).not.toContain(SECRET_EMAIL)
  })

  it("serves no GET /_dev/errors in production", async () => {
    const production = await startApp(app, { env: { ...productionEnv("faults", ["faults"]), DB_SCHEMA: schema } })
    try {
      expect((await fetch(`${production.url}/_dev/errors`)).status).toBe(404)
    } finally {
      await production.close()
    }
  }, 60_000)
})

describe("Lambda", () => {
  it("reports a route that dies and has sent the report by the time the invocation answers", async () => {
    // The Lambda entry reads its configuration from the environment.
    process.env.SENTRY_DSN = capture.dsn
    process.env.DB_SCHEMA = schema
    try {
      const handler = Lambda.handler(app)
      const event = apiGatewayEvent("GET", "/api/v1/faults/die/9")
      const result = await handler(
        { ...event, headers: { ...event.headers, "x-request-id": "lambda-die" } },
        lambdaContext("faults"),
      )
      expect(result.statusCode).toBe(500)
      // No wait: a frozen invocation would send nothing after it answered.
      expect(eventsWhere(withRequestId("lambda-die"))).toMatchObject([
        { transaction: "/api/v1/faults/die/:id", tags: { service: "faults", origin: "http" } },
      ])
    } finally {
      delete process.env.SENTRY_DSN
      delete process.env.DB_SCHEMA
    }
  })
})

describe("jobs", () => {
  it("reports a job's last attempt once, with the job and its run's trace and span ids", async () => {
    const response = await fetch(`${faults.url}/api/v1/faults/doom`, { method: "POST" })
    expect(response.status).toBe(200)
    await arrived("the doomed job's report", (e) => e.tags.job === "doomed", 30_000)
    // Once both attempts are over (the second dead-lettered it), one report in all: the first attempt sent none.
    await eventually(
      "the doomed job dead-lettered",
      async () =>
        (await (await fetch(`${faults.url}/metrics`)).text())
          .split("\n")
          .some((l) => l.startsWith("jobs_runs_total") && l.includes('job="doomed"') && l.includes("dead-lettered")),
      30_000,
    )
    const [event, ...more] = eventsWhere((e) => e.tags.job === "doomed")
    expect(more).toEqual([])
    expect(event).toMatchObject({
      transaction: "job:doomed",
      fingerprint: ["Error", "job:doomed"],
      tags: { service: "faults", origin: "job", route: "job:doomed" },
    })
    expect(event!.tags.job_id).toMatch(/^[0-9a-f-]{36}$/)
    expect(event!.tags.trace_id).toMatch(/^[0-9a-f]{32}$/)
    expect(event!.tags.span_id).toMatch(/^[0-9a-f]{16}$/)
    expect(event!.exception.values.at(-1)!.value).toBe("the doomed job fails, as always")
  })
})

// A bus reporting to the capture server as `service`, for the kernel parts tested outside a function.
const busFor = (service: string) =>
  ErrorBus.layer({
    service,
    release: `${service}@0.0.0`,
    environment: "test",
    dsn: Option.some(Redacted.make(capture.dsn)),
    sampleRate: 1,
    perMinute: 10,
    keepRecent: false,
    flushTimeoutMs: 10_000,
  })

describe("gRPC", () => {
  it("reports an unexpected failure (INTERNAL) with the method and the call's ids, never an expected one", async () => {
    const service = GrpcServer.service(IdentityServiceService, {
      createUser: () => Effect.die(new Error("not served here")),
      getUser: (request: { readonly id: string }) =>
        request.id === "boom"
          ? Effect.die(new Error(`the user row of ${SECRET_EMAIL} is corrupt`))
          : Effect.fail(new NotFound({ detail: "no such user" })),
      getUserByEmail: () => Effect.die(new Error("not served here")),
      verifyCredentials: () => Effect.die(new Error("not served here")),
      setEmailVerified: () => Effect.die(new Error("not served here")),
      createVerifiedUser: () => Effect.die(new Error("not served here")),
    } as never)
    const port = await freePort()
    const scope = Scope.makeUnsafe()
    try {
      await Effect.runPromise(
        Layer.buildWithScope(
          GrpcServer.GrpcServer.layer({ port, host: "127.0.0.1", services: [service] }).pipe(
            Layer.provide(ServiceIdentity.layerDev("identity", ["test-caller"])),
            Layer.provide(busFor("identity-grpc")),
          ),
          scope,
        ),
      )
      const call = (id: string, requestId: string) =>
        Effect.runPromise(
          Effect.gen(function* () {
            const client = yield* GrpcClient.make(IdentityServiceClient, { address: `127.0.0.1:${port}` })
            return yield* Effect.exit(client.call("getUser", { id }))
          }).pipe(
            Effect.provideService(RequestId, requestId),
            Effect.provide(ServiceIdentity.layerDev("test-caller")),
            Effect.scoped,
          ),
        )
      expect(Exit.isFailure(await call("absent", "grpc-not-found"))).toBe(true)
      expect(Exit.isFailure(await call("boom", "grpc-boom"))).toBe(true)
      const [event] = await arrived("the gRPC report", withRequestId("grpc-boom"))
      expect(event).toMatchObject({
        transaction: "identity.v1.IdentityService/GetUser",
        tags: { service: "identity-grpc", origin: "grpc", route: "identity.v1.IdentityService/GetUser" },
      })
      expect(event!.tags.trace_id).toMatch(/^[0-9a-f]{32}$/)
      expect(event!.exception.values.at(-1)!.value).toBe("the user row of [email] is corrupt")
      expect(eventsWhere(withRequestId("grpc-not-found"))).toEqual([])
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  })
})

describe("event consumers", () => {
  it("reports an event dead-lettered by its handler once, with the consumer, type and the event's span", async () => {
    const event = CloudEvent.make({ source: "ledger", type: "ledger.entry.created", data: { n: 1 } })
    const outcome = await Effect.runPromise(
      Effect.gen(function* () {
        const db = yield* serviceDb("t_dead")
        return yield* consume({
          consumer: "t_dead.projector",
          topic: "ledger.events",
          payload: JSON.stringify(event),
          handler: () => Effect.die(new Error(`cannot project the entry of ${SECRET_EMAIL}`)),
          retry: { maxAttempts: 2, baseDelay: "10 millis", maxDelay: "10 millis" },
          system: "postgresql",
        }).pipe(Effect.provideService(Db, db))
      }).pipe(Effect.provide(busFor("projector")), Effect.scoped),
    )
    expect(outcome._tag).toBe("Failed")
    const [report, ...more] = await arrived("the dead letter's report", (e) => e.tags.service === "projector")
    expect(more).toEqual([])
    expect(report).toMatchObject({
      transaction: "event:t_dead.projector/ledger.entry.created",
      tags: {
        origin: "event",
        consumer: "t_dead.projector",
        topic: "ledger.events",
        event_type: "ledger.entry.created",
      },
    })
    expect(report!.tags.span_id).toMatch(/^[0-9a-f]{16}$/)
    expect(report!.exception.values.at(-1)!.value).toBe("cannot project the entry of [email]")
  })
})

describe("the process", () => {
  const children: Array<ChildProcess> = []
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL")
  })

  it("reports an unhandled rejection before the process exits, then stops with exit code 1", async () => {
    const port = await freePort()
    const fixture = fileURLToPath(new URL("testing/faultsMain.ts", import.meta.url))
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, HTTP_PORT: String(port), DB_SCHEMA: schema, LOG_LEVEL: "fatal", SENTRY_DSN: capture.dsn },
      stdio: ["ignore", "pipe", "pipe"],
    })
    children.push(child)
    let output = ""
    for (const stream of [child.stdout!, child.stderr!]) stream.on("data", (chunk) => (output += chunk))
    let atExit: Array<CapturedEvent> | undefined
    const exited = once(child, "exit").then(([code]) => {
      atExit = eventsWhere((e) => e.tags.origin === "process")
      return code as number
    })
    await eventually(
      "the fixture's process to serve",
      async () => {
        if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${output}`)
        return fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.ok,
          () => false,
        )
      },
      30_000,
    )
    expect((await fetch(`http://127.0.0.1:${port}/api/v1/faults/reject`, { method: "POST" })).status).toBe(200)
    expect(await exited, output).toBe(1)
    expect(atExit).toHaveLength(1)
    expect(atExit![0]).toMatchObject({
      level: "fatal",
      transaction: "unhandledRejection",
      tags: { service: "faults", origin: "process", route: "unhandledRejection" },
    })
    expect(atExit![0]!.exception.values.at(-1)).toMatchObject({
      type: "RangeError",
      value: "nobody caught this for [email]",
    })
  }, 60_000)
})
