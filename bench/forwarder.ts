// The gateway bench's baseline: a bare forwarder, node:http in front of an undici keep-alive pool, with no checks at
// all (no auth, no limits, no request id, no metrics, no spans). It forwards method, path with query, headers and
// body to one upstream and streams the answer back; what the gateway costs above this is the cost of its checks and
// of its framework, not of proxying in Node.
//   UPSTREAM_URL=http://127.0.0.1:3001 HTTP_PORT=8080 [UPSTREAM_CONNECTIONS=128] node bench/forwarder.ts
import { createServer, type IncomingHttpHeaders } from "node:http"
import { Pool } from "undici"

const upstream = process.env.UPSTREAM_URL
if (!upstream) throw new Error("UPSTREAM_URL is not set")
const port = Number(process.env.HTTP_PORT ?? 8080)
// The gateway's default (UPSTREAM_CONNECTIONS, 128): the same pool size, so that only the work per request differs.
const pool = new Pool(new URL(upstream).origin, {
  connections: Number(process.env.UPSTREAM_CONNECTIONS ?? 128),
  keepAliveTimeout: 30_000,
})

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection, not to the request: undici refuses some of them,
// and the answer's are Node's own to set on the client's connection.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
])
const endToEnd = (headers: IncomingHttpHeaders | Record<string, string | Array<string> | undefined>) => {
  const out: Record<string, string | Array<string>> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
  }
  return out
}

const server = createServer((request, response) => {
  const method = request.method ?? "GET"
  const hasBody = request.headers["content-length"] !== undefined || request.headers["transfer-encoding"] !== undefined
  const controller = new AbortController()
  // The client went away before the answer was sent: the upstream request goes with it.
  response.once("close", () => {
    if (!response.writableFinished) controller.abort()
  })
  pool
    .request({
      method: method as "GET",
      path: request.url ?? "/",
      headers: endToEnd(request.headers),
      body: hasBody ? request : null,
      signal: controller.signal,
    })
    .then(
      (answer) => {
        response.writeHead(answer.statusCode, endToEnd(answer.headers))
        // As the gateway streams an answer back (functions/gateway/SocketAnswers.ts): `pipe` with the two failures
        // handled. `stream.pipeline` cost this process ≈ 1/3 of its CPU, 7 % in one DOMException per request alone
        // (the AbortError it makes to clean up after every stream that ended normally).
        answer.body.on("error", () => response.destroy())
        response.once("close", () => {
          if (!answer.body.readableEnded) answer.body.destroy()
        })
        answer.body.pipe(response)
      },
      () => {
        if (response.headersSent) response.destroy()
        else {
          response.writeHead(502, { "content-type": "text/plain" })
          response.end("bad gateway\n")
        }
      },
    )
})
server.keepAliveTimeout = 30_000
server.listen(port, "127.0.0.1")

const stop = () => {
  server.close()
  server.closeIdleConnections()
  void pool.close().finally(() => process.exit(0))
}
process.once("SIGTERM", stop)
process.once("SIGINT", stop)
