import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/** What a test upstream saw of one request. */
export interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: IncomingMessage["headers"]
  readonly bodyBytes: number
}

/** A tiny real HTTP server standing in for a function (proxy mechanics), recording what reached it. */
export interface TestUpstream {
  readonly url: string
  readonly port: number
  readonly seen: Array<Seen>
  close(): Promise<void>
}

/** Handles one request after its body was read; return true when it answered (else 404 problem). */
export type Handler = (request: IncomingMessage, response: ServerResponse, body: Buffer) => boolean | undefined

/** Starts a node:http server on `port` (0 = free) that records every request and answers with `handler`. */
export const startUpstream = async (handler: Handler, port = 0): Promise<TestUpstream> => {
  const seen: Array<Seen> = []
  const server: Server = createServer((request, response) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      const body = Buffer.concat(chunks)
      seen.push({
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
        bodyBytes: body.length,
      })
      if (handler(request, response, body)) return
      response
        .writeHead(404, { "content-type": "application/problem+json" })
        .end(JSON.stringify({ type: "urn:problem:not_found", title: "Not found", status: 404, code: "not_found" }))
    })
  })
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve))
  const actual = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A port nothing listens on (taken from the OS, then released). */
