import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Duration, Effect } from "effect"
import { answerClientError } from "./ClientErrors.ts"
import * as Problem from "./Problem.ts"

/**
 * A handler that may take a request before the router: true when it answers it itself, false to pass it on. The
 * gateway's proxy is one: it streams bodies both ways and does the middleware's work (request id, client address,
 * problems, metrics) on its own, without a router, a server span or a response object per request.
 */
export type Front = (request: IncomingMessage, response: ServerResponse) => boolean

// Node's server.close() closes the connections idle at that moment only; a keep-alive socket whose request is still
// in flight would linger after its response until the client's idle timeout. Sweep idle sockets until closed.
export const drainingServer = (front: Front | undefined, taken: Set<ServerResponse>) => {
  // No upgrades with a front: an `Upgrade: h2c` or `websocket` request is an ordinary request (the front proxies it
  // with the hop-by-hop header dropped) instead of reaching the router's upgrade handler.
  const server = createServer({
    requestTimeout: 30_000,
    ...(front === undefined ? {} : { shouldUpgradeCallback: () => false }),
  })
  server.on("clientError", answerClientError)
  const close = server.close.bind(server)
  server.close = (callback) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 50)
    return close((error) => {
      clearInterval(sweep)
      callback?.(error)
    })
  }
  if (front !== undefined) {
    // Requests (and `Expect: 100-continue` ones: the front sends the 100 when it wants the body) reach the front
    // first; the router's listeners get the rest. What the front takes is tracked until its response closes.
    const emit = server.emit.bind(server) as (event: string, ...args: Array<unknown>) => boolean
    server.emit = ((event: string, ...args: Array<unknown>) => {
      if (event === "request" || event === "checkContinue") {
        const [request, response] = args as [IncomingMessage, ServerResponse]
        if (front(request, response)) {
          taken.add(response)
          response.once("close", () => taken.delete(response))
          return true
        }
      }
      return emit(event, ...args)
    }) as typeof server.emit
  }
  return server
}

// Shutdown with a front: stop accepting, give what the front has in flight the grace period, then answer 503 to those
// still waiting for an answer and cut the streams still flowing (the front stops their work when they close).
export const drainFront = (server: Server, taken: Set<ServerResponse>, graceMs: number) =>
  Effect.gen(function* () {
    server.close()
    yield* Effect.callback<void>((resume) => {
      const check = setInterval(() => taken.size === 0 && resume(Effect.void), 20)
      if (taken.size === 0) resume(Effect.void)
      return Effect.sync(() => clearInterval(check))
    }).pipe(Effect.timeoutOrElse({ duration: Duration.millis(graceMs), orElse: () => Effect.void }))
    for (const response of taken) {
      if (response.headersSent) response.destroy()
      else {
        const answer = Problem.response(503, "the service is shutting down, retry", { retryAfter: 1 })
        const body = answer.body as { readonly body: Uint8Array; readonly contentType: string }
        response.writeHead(503, { "content-type": body.contentType, "retry-after": "1", connection: "close" })
        response.end(body.body)
      }
    }
  })
