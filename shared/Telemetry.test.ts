import { createServer, type IncomingMessage } from "node:http"
import { Effect, Layer, Option } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { describe, expect, it } from "vitest"
import * as Kernel from "./Kernel.ts"
import * as Server from "./Server.ts"
import { baseUrl, start } from "./testing/harness.ts"

// In a file of its own: Effect caches the tracer per context root, so an app built earlier in the same module
// graph without an exporter would keep later apps on the in-process tracer.
describe("Telemetry", () => {
  it("exports spans over OTLP/HTTP when an endpoint is configured, continuing the caller's trace", async () => {
    const bodies: Array<string> = []
    const collector = createServer((req: IncomingMessage, res) => {
      let body = ""
      req.on("data", (c) => {
        body += c
      })
      req.on("end", () => {
        if (req.url === "/v1/traces") bodies.push(body)
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r))
    const { port } = collector.address() as { port: number }
    try {
      const route = HttpRouter.add(
        "GET",
        "/traced",
        Effect.as(Effect.void.pipe(Effect.withSpan("Traced.work")), HttpServerResponse.text("ok")),
      )
      const traced = Kernel.base({
        service: "server-test",
        version: "test",
        logLevel: "fatal",
        otelEndpoint: Option.some(new URL(`http://127.0.0.1:${port}`)),
      })
      const app = await start(Server.serve(route, { port: 0 }).pipe(Layer.provide(traced)))
      const traceId = "0af7651916cd43dd8448eb211c80319c"
      await fetch(`${baseUrl(app as never)}/traced`, {
        headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
      })
      await app.close() // flushes the exporter
      const exported = bodies.join("\n")
      expect(exported).toContain("Traced.work")
      expect(exported).toContain(traceId)
      expect(exported).toContain("server-test")
    } finally {
      collector.close()
    }
  })
})
