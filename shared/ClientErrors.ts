import { STATUS_CODES } from "node:http"
import type { Duplex } from "node:stream"
import * as Problem from "./Problem.ts"

// Requests Node refuses before any handler (headers too large, malformed HTTP, a request timeout) are answered as
// every other error, problem+json with a stable code, instead of Node's bare status line with an empty body.
export const answerClientError = (error: Error & { code?: string }, socket: Duplex) => {
  if (!socket.writable || error.code === "ECONNRESET") {
    socket.destroy()
    return
  }
  const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400
  const { code, title } = Problem.forStatus(status)
  const detail =
    status === 431
      ? "the request's header fields are too large"
      : status === 408
        ? "the request took too long to arrive"
        : "the request is not valid HTTP"
  const body = JSON.stringify({ type: `urn:problem:${code}`, title, status, detail, code })
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/problem+json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  )
}
