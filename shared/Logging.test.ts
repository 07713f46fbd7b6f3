import { Writable } from "node:stream"
import { Effect, Layer, Logger } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Health } from "./Health.ts"
import * as Logging from "./Logging.ts"
import * as Server from "./Server.ts"
import { baseUrl, type Running, start } from "./testing/harness.ts"

// Captures what pino writes, one parsed JSON object per line.
const capture = () => {
  const lines: Array<Record<string, unknown>> = []
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(line))
      done()
    },
  })
  return { lines, destination }
}

describe("Logging", () => {
  it("writes JSON lines with service, level, time, annotations and the current trace ids", async () => {
    const { lines, destination } = capture()
    const log = Logging.fromPino(Logging.makePino({ service: "svc", level: "info", destination }))
    await Effect.runPromise(
      Effect.logInfo("hello", { orderId: 7 }).pipe(
        Effect.annotateLogs({ request_id: "r-1", user_id: "u-1" }),
        Effect.withSpan("Test.span"),
        Effect.provide(Logger.layer([log])),
      ),
    )
    const line = lines.find((l) => l.msg === "hello")
    expect(line).toMatchObject({ service: "svc", level: "info", request_id: "r-1", user_id: "u-1", orderId: 7 })
    expect(line?.trace_id).toMatch(/^[0-9a-f]{32}$/)
    expect(line?.span_id).toMatch(/^[0-9a-f]{16}$/)
    expect(typeof line?.time).toBe("string")
  })

  it("drops lines below the configured level and never prints redacted fields", async () => {
    const { lines, destination } = capture()
    const log = Logging.fromPino(Logging.makePino({ service: "svc", level: "warn", destination }))
    await Effect.runPromise(
      Effect.all([
        Effect.logInfo("quiet"),
        Effect.logWarning("loud", {
          password: "hunter2",
          body: { user: { newPassword: "hunter3" }, refresh_token: "rt-secret" },
          headers: { authorization: "Bearer tok", cookie: "sid=abc" },
        }),
      ]).pipe(Effect.provide(Logger.layer([log]))),
    )
    expect(lines.map((l) => l.msg)).toEqual(["loud"])
    const text = JSON.stringify(lines)
    for (const secret of ["hunter2", "hunter3", "rt-secret", "Bearer tok", "sid=abc"])
      expect(text).not.toContain(secret)
    expect(text).toContain("[redacted]")
  })
})

describe("Logging in a request", () => {
  const { lines, destination } = capture()
  const route = HttpRouter.add(
    "GET",
    "/work",
    Effect.as(Effect.logInfo("working"), HttpServerResponse.text("done")).pipe(Effect.withSpan("Work.handle")),
  )
  let app: Running<never>
  beforeAll(async () => {
    // The request's log lines go to the captured pino.
    const LoggerLive = Layer.mergeAll(
      Health.layer,
      Logger.layer([Logging.fromPino(Logging.makePino({ service: "web", level: "info", destination }))]),
    )
    app = (await start(Server.serve(route, { port: 0 }).pipe(Layer.provide(LoggerLive)))) as never
  })
  afterAll(() => app.close())

  it("carries the request id and continues the caller's W3C trace", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
    const res = await fetch(`${baseUrl(app)}/work`, {
      headers: { "x-request-id": "req-log-1", traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    })
    expect(res.status).toBe(200)
    const line = lines.find((l) => l.msg === "working")
    expect(line).toMatchObject({ service: "web", request_id: "req-log-1", trace_id: traceId })
    expect(line?.span_id).toMatch(/^[0-9a-f]{16}$/)
  })
})
