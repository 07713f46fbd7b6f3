import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { describe, expect, it } from "vitest"
import { Health, register } from "./Health.ts"
import * as Kernel from "./Kernel.ts"
import { ClientIp } from "./RequestContext.ts"
import * as Server from "./Server.ts"
import { baseUrl, start } from "./testing/harness.ts"

const base = Kernel.base({ service: "server-test", version: "test", logLevel: "fatal" })

describe("Server", () => {
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
