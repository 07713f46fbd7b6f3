import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"

/** One envelope as the capture server received it, parsed item by item. */
export interface CapturedEnvelope {
  /** The envelope's header line (event_id, sent_at, sdk). */
  readonly header: Record<string, unknown>
  readonly items: ReadonlyArray<{ readonly header: Record<string, unknown>; readonly payload: unknown }>
  /** The request as it came: path, query and the body's bytes as text (to prove what never left the process). */
  readonly path: string
  readonly query: URLSearchParams
  readonly contentType: string
  readonly raw: string
}

/** A Sentry event the capture server received (the payload of an `event` item). */
export interface CapturedEvent {
  readonly event_id: string
  readonly level: string
  readonly release: string
  readonly environment: string
  readonly transaction: string
  readonly fingerprint: ReadonlyArray<string>
  readonly tags: Record<string, string>
  readonly contexts: { readonly trace?: { readonly trace_id: string; readonly span_id: string } }
  readonly exception: {
    readonly values: ReadonlyArray<{
      readonly type: string
      readonly value: string
      readonly stacktrace?: { readonly frames: ReadonlyArray<{ readonly filename: string; readonly in_app: boolean }> }
    }>
  }
}

/** A Sentry-compatible ingestion endpoint on localhost, for tests: the real envelope protocol over real HTTP. */
export interface SentryCapture {
  /** A DSN pointing at it (project 42, public key `testkey`). */
  readonly dsn: string
  readonly envelopes: Array<CapturedEnvelope>
  /** The events of every envelope, in the order they arrived. */
  events(): Array<CapturedEvent>
  /** Answers every later envelope with this status (e.g. 429 with `Retry-After`); 200 by default. */
  answerWith(status: number, headers?: Record<string, string>): void
  close(): Promise<void>
}

const PUBLIC_KEY = "testkey"
const PROJECT = "42"

/**
 * Parses an envelope (https://develop.sentry.dev/sdk/data-model/envelopes/): a header line of JSON, then items, each
 * an item header line of JSON and a payload of `length` bytes when the header says so, else up to the next newline.
 */
export const parseEnvelope = (body: Buffer) => {
  let at = 0
  const line = () => {
    const end = body.indexOf(0x0a, at)
    const text = body.subarray(at, end === -1 ? body.length : end).toString("utf8")
    at = end === -1 ? body.length : end + 1
    return text
  }
  const header = JSON.parse(line()) as Record<string, unknown>
  const items: Array<{ header: Record<string, unknown>; payload: unknown }> = []
  while (at < body.length) {
    const text = line()
    if (text === "") continue
    const itemHeader = JSON.parse(text) as Record<string, unknown>
    let payload: string
    if (typeof itemHeader.length === "number") {
      payload = body.subarray(at, at + itemHeader.length).toString("utf8")
      at += itemHeader.length
      if (body[at] === 0x0a) at++
    } else payload = line()
    items.push({ header: itemHeader, payload: itemHeader.type === "attachment" ? payload : JSON.parse(payload) })
  }
  return { header, items }
}

const bodyOf = (request: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks)))
    request.on("error", reject)
  })

/** Starts the capture server on a free port of 127.0.0.1. */
export const startSentryCapture = async (): Promise<SentryCapture> => {
  const envelopes: Array<CapturedEnvelope> = []
  let answer = { status: 200, headers: {} as Record<string, string> }
  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? "/", "http://localhost")
    // Only the envelope endpoint of the DSN's project, authenticated by its public key, as Sentry checks.
    if (
      request.method !== "POST" ||
      url.pathname !== `/api/${PROJECT}/envelope/` ||
      url.searchParams.get("sentry_key") !== PUBLIC_KEY
    ) {
      response.writeHead(404).end()
      return
    }
    const body = await bodyOf(request)
    const { header, items } = parseEnvelope(body)
    envelopes.push({
      header,
      items,
      path: url.pathname,
      query: url.searchParams,
      contentType: request.headers["content-type"] ?? "",
      raw: body.toString("utf8"),
    })
    response.writeHead(answer.status, { "content-type": "application/json", ...answer.headers })
    response.end(JSON.stringify({ id: header.event_id }))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    dsn: `http://${PUBLIC_KEY}@127.0.0.1:${port}/${PROJECT}`,
    envelopes,
    events: () =>
      envelopes.flatMap((e) => e.items.filter((i) => i.header.type === "event").map((i) => i.payload as CapturedEvent)),
    answerWith: (status, headers = {}) => {
      answer = { status, headers }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
