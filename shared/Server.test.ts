import { connect } from "node:net"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApi, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { describe, expect, it } from "vitest"
import * as Route from "./access/Route.ts"
import { Health, register } from "./Health.ts"
import * as Kernel from "./Kernel.ts"
import { ClientIp } from "./RequestContext.ts"
import * as Server from "./Server.ts"
import { baseUrl, start } from "./testing/harness.ts"

const base = Kernel.base({ service: "server-test", version: "test", logLevel: "fatal" })

// What the server writes back on a raw connection (to send what no HTTP client would).
const raw = (port: number, request: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(request))
    let answer = ""
    socket.on("data", (chunk) => (answer += chunk.toString()))
    socket.on("close", () => resolve(answer))
    socket.on("error", reject)
  })

describe("Server", () => {
  it("answers requests Node refuses before any handler as problem+json: 431 for huge headers, 400 for bad HTTP", async () => {
    const app = await start(Server.serve(Layer.empty, { port: 0 }).pipe(Layer.provide(base)))
    try {
      const port = Number(new URL(baseUrl(app as never)).port)
      const big = await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`)
      expect(big).toMatch(/^HTTP\/1.1 431 /)
      expect(big).toContain("content-type: application/problem+json")
      expect(JSON.parse(big.slice(big.indexOf("\r\n\r\n") + 4))).toMatchObject({
        status: 431,
        code: "request_header_fields_too_large",
      })
      const bad = await raw(port, "NOT HTTP AT ALL\r\n\r\n")
      expect(bad).toMatch(/^HTTP\/1.1 400 /)
      expect(JSON.parse(bad.slice(bad.indexOf("\r\n\r\n") + 4))).toMatchObject({ status: 400, code: "bad_request" })
    } finally {
      await app.close()
    }
  })

  it("/readyz answers 503 naming the failing checks, /healthz stays 200", async () => {
    const checks = Layer.effectDiscard(
      Effect.all([register("postgres", Effect.void), register("redis", Effect.fail("down"))]),
    )
    const app = await start(
      Server.serve(Layer.empty, { port: 0 }).pipe(Layer.provide(checks), Layer.provideMerge(Health.layer)),
    )
    try {
      const ready = await fetch(`${baseUrl(app as never)}/readyz`)
      expect(ready.status).toBe(503)
      expect(ready.headers.get("content-type")).toBe("application/problem+json")
      expect(await ready.json()).toMatchObject({
        code: "service_unavailable",
        detail: "not ready: redis",
        checks: { postgres: "ok", redis: "failing" },
      })
      expect((await fetch(`${baseUrl(app as never)}/healthz`)).status).toBe(200)
    } finally {
      await app.close()
    }
  })

  it("takes the client address from X-Forwarded-For only when the peer is a trusted proxy", async () => {
    const echo = HttpRouter.add(
      "GET",
      "/ip",
      Effect.map(Effect.service(ClientIp), (ip) => HttpServerResponse.text(ip)),
    )
    const ipFrom = async (trustedProxies: ReadonlyArray<string>, forwarded?: string) => {
      const app = await start(Server.serve(echo, { port: 0, trustedProxies }).pipe(Layer.provide(base)))
      try {
        const res = await fetch(`${baseUrl(app as never)}/ip`, {
          headers: forwarded === undefined ? {} : { "x-forwarded-for": forwarded },
        })
        return await res.text()
      } finally {
        await app.close()
      }
    }
    expect(await ipFrom([], "203.0.113.7")).toMatch(/127\.0\.0\.1/)
    expect(await ipFrom(["127.0.0.1", "::ffff:127.0.0.1"], "203.0.113.7")).toBe("203.0.113.7")
    // A client's own spoofed entry stays left of what the trusted proxy appended: the rightmost untrusted wins.
    expect(await ipFrom(["127.0.0.1", "::ffff:127.0.0.1", "10.0.0.2"], "6.6.6.6, 203.0.113.7, 10.0.0.2")).toBe(
      "203.0.113.7",
    )
  })

  it("a route's declared body limit replaces the default there: over it (declared or chunked) is 413", async () => {
    const MiB = 1024 * 1024
    const api = HttpApi.make("sized").add(
      HttpApiGroup.make("g")
        .add(HttpApiEndpoint.post("large", "/large").pipe(Route.open({ maxBodyBytes: 3 * MiB })))
        .add(HttpApiEndpoint.post("small", "/small").pipe(Route.open())),
    )
    // Each answers the size of the body it read (reading applies the limit to a body without a length).
    const counted = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      Effect.map(request.arrayBuffer, (body) => HttpServerResponse.text(String(body.byteLength))),
    )
    const routes = Layer.mergeAll(HttpRouter.add("POST", "/large", counted), HttpRouter.add("POST", "/small", counted))
    const app = await start(Server.serve(routes, { port: 0, api, maxBodyBytes: MiB }).pipe(Layer.provide(base)))
    try {
      const url = baseUrl(app as never)
      const post = (path: string, body: Uint8Array | ReadableStream<Uint8Array>) =>
        fetch(`${url}${path}`, { method: "POST", body, duplex: "half" } as RequestInit)
      const chunked = (chunks: number) => {
        let sent = 0
        return new ReadableStream<Uint8Array>({
          pull(controller) {
            if (sent++ >= chunks) return controller.close()
            controller.enqueue(new Uint8Array(256 * 1024))
          },
        })
      }
      const through = await post("/large", new Uint8Array(2 * MiB))
      expect([through.status, await through.text()]).toEqual([200, String(2 * MiB)])
      const chunkedThrough = await post("/large", chunked(8))
      expect([chunkedThrough.status, await chunkedThrough.text()]).toEqual([200, String(2 * MiB)])
      const declared = await post("/large", new Uint8Array(4 * MiB))
      expect(declared.status).toBe(413)
      expect(await declared.json()).toMatchObject({ detail: `request body is larger than ${3 * MiB} bytes` })
      expect((await post("/large", chunked(16))).status).toBe(413)
      // The default still holds on a route without its own.
      expect((await post("/small", new Uint8Array(2 * MiB))).status).toBe(413)
      expect((await post("/small", chunked(8))).status).toBe(413)
    } finally {
      await app.close()
    }
  })

  it("on shutdown stops accepting and lets an in-flight request finish", async () => {
    const slow = HttpRouter.add(
      "GET",
      "/slow",
      Effect.as(Effect.sleep("400 millis"), HttpServerResponse.text("finished")),
    )
    const app = await start(Server.serve(slow, { port: 0, shutdownTimeoutMs: 5_000 }).pipe(Layer.provide(base)))
    const url = baseUrl(app as never)
    const inFlight = fetch(`${url}/slow`)
    await new Promise((r) => setTimeout(r, 100))
    const closing = app.close()
    const response = await inFlight
    expect(response.status).toBe(200)
    expect(await response.text()).toBe("finished")
    await closing
    await expect(fetch(`${url}/healthz`)).rejects.toThrow()
  })
})
