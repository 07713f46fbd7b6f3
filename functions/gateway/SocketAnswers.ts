import type { IncomingMessage, ServerResponse } from "node:http"
import type { Readable } from "node:stream"
import { Effect } from "effect"
import { Cookies, type HttpServerResponse } from "effect/http"

/** The request carries a body (chunked, or a non-zero Content-Length). */
export const hasBody = (request: IncomingMessage) => {
  const length = request.headers["content-length"]
  return request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0")
}

/**
 * Writes a streamed answer (the upstream's) to the client: its headers as given, then the body piped (none for HEAD,
 * or when `body` is undefined: then only drained).
 */
export const stream = (
  request: IncomingMessage,
  response: ServerResponse,
  status: number,
  headers: Record<string, string | Array<string>>,
  body: Readable | undefined,
) => {
  response.writeHead(status, headers)
  if (body === undefined || request.method === "HEAD") {
    body?.resume()
    response.end()
    return
  }
  // An upstream that fails mid-body cannot be answered any more: the client sees the connection end. A client that
  // goes away mid-body releases the upstream's (and its pooled connection).
  body.on("error", () => response.destroy())
  response.once("close", () => {
    if (!body.readableEnded) body.destroy()
  })
  body.pipe(response)
}

// Writes a response the gateway produced (problems, preflights, the upstream's streamed answer) to the client.
const write = (
  request: IncomingMessage,
  response: ServerResponse,
  answer: HttpServerResponse.HttpServerResponse,
  requestId: string,
) => {
  if (response.destroyed) {
    if (answer.body._tag === "Raw") (answer.body.body as Readable | undefined)?.resume()
    return
  }
  const headers: Record<string, string | Array<string>> = { ...answer.headers, "x-request-id": requestId }
  if (!Cookies.isEmpty(answer.cookies)) headers["set-cookie"] = Cookies.toSetCookieHeaders(answer.cookies)
  // Answered before the client's body was read (refused, too large): the connection cannot carry another request.
  if (hasBody(request) && !request.complete) headers.connection = "close"
  const body = answer.body
  if (body._tag === "Raw") return stream(request, response, answer.status, headers, body.body as Readable | undefined)
  if (body._tag === "Uint8Array") {
    headers["content-type"] = body.contentType
    headers["content-length"] = String(body.contentLength)
    response.writeHead(answer.status, headers)
    response.end(request.method === "HEAD" ? undefined : body.body)
    return
  }
  response.writeHead(answer.status, headers)
  response.end()
}

/**
 * `send` without an effect: writes the answer, never throwing; what went wrong (the connection is then ended) is
 * returned for the caller to log.
 */
export const sendNow = (
  request: IncomingMessage,
  response: ServerResponse,
  answer: HttpServerResponse.HttpServerResponse,
  requestId: string,
): unknown => {
  try {
    write(request, response, answer, requestId)
    return undefined
  } catch (error) {
    if (answer.body._tag === "Raw") (answer.body.body as Readable | undefined)?.destroy()
    response.destroy()
    return error ?? new Error("unknown")
  }
}

// `write`, never throwing: a header Node refuses (or any other surprise) ends the connection and is logged, instead of
// leaving the client waiting and the upstream's body unread.
export const send = (
  request: IncomingMessage,
  response: ServerResponse,
  answer: HttpServerResponse.HttpServerResponse,
  requestId: string,
) =>
  Effect.suspend(() => {
    const error = sendNow(request, response, answer, requestId)
    return error === undefined
      ? Effect.void
      : Effect.logError("answer could not be written", { error: String(error), status: answer.status })
  })
