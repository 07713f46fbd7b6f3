import type { IncomingMessage } from "node:http"
import { Cause, Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { ErrorBus } from "../../../shared/ErrorBus.ts"
import * as Problem from "../../../shared/Problem.ts"
import * as Cors from "../Cors.ts"
import { OpenApiDocument } from "../OpenApi.ts"
import type { ProxyOptions } from "../ProxyOptions.ts"
import { type Caller, dispatcher, type RestAnswer, type RestCall } from "./Dispatch.ts"
import { GRAPHQL_PATH } from "./Path.ts"

// GraphQL answers are per caller: never cached, never sniffed, never framed, and they load nothing.
const JSON_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}

// The GraphiQL page (development only): its script and styles are in the page (@graphql-yoga/render-graphiql, no CDN),
// its editor's workers from blob: URLs; requests to this origin only.
const GRAPHIQL_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "content-security-policy": [
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "font-src 'self' data:",
    "img-src 'self' data:",
    "worker-src 'self' blob:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
  ].join("; "),
}

// The request's body, up to `limit` bytes (undefined past it).
const bodyOf = (request: IncomingMessage, limit: number) =>
  Effect.callback<string | undefined>((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= limit) chunks.push(chunk)
    }
    const onEnd = () => resume(Effect.succeed(size > limit ? undefined : Buffer.concat(chunks).toString("utf8")))
    request.on("data", onData)
    request.once("end", onEnd)
    request.once("error", () => resume(Effect.succeed(undefined)))
    return Effect.sync(() => {
      request.off("data", onData)
      request.off("end", onEnd)
    })
  })

/**
 * `/graphql`: the public API as GraphQL (`Schema.ts` derives it from the merged OpenAPI document, so it follows every
 * function's routes and schemas). Each field sends its operation's REST request through the gateway's own admission
 * and upstream pools (`Dispatch.ts`) with the caller's Authorization, so rate limits, the edge's token and permission
 * checks and the functions' own checks apply per field as they do over REST. POST only in production; in development
 * GET also serves GraphiQL. The proxy's front answers it (`Http.ts`), not the kernel's router: a refused query is a
 * 400 whose body is GraphQL's errors (GraphQL over HTTP), which the router would replace with a bare problem. The
 * front gives it the request id, client address, CORS, metrics and server span the proxy's requests get.
 */
export const front = (options: ProxyOptions) =>
  Effect.gen(function* () {
    const document = yield* OpenApiDocument
    const dispatch = yield* dispatcher(options)
    const errors = yield* ErrorBus
    const services = yield* Effect.context<never>()
    // An error Yoga masked (a defect, an answer that does not fit the schema): logged and reported, as the proxy's.
    const unexpected = (error: unknown) =>
      Effect.runForkWith(services)(
        Effect.andThen(
          Effect.logError("graphql field failed unexpectedly", Cause.die(error)),
          errors.capture({ cause: Cause.die(error), origin: "http", route: GRAPHQL_PATH }),
        ),
      )
    // Yoga, graphql-js and graphql-armor are loaded by the first GraphQL request: the edge starts without them.
    const server = yield* Effect.cached(
      Effect.promise(async () => {
        const m = await import("./Server.ts")
        // GraphiQL (9 MB, inline) only where it is served: a bundle leaves it out (scripts/build.ts).
        const graphiql = options.development ? (await import("./GraphiQL.js")).renderGraphiQL : undefined
        return { yoga: m.make({ development: options.development, unexpected, graphiql }), schemaOf: m.schemas() }
      }),
    )
    const methods = options.development ? ["GET", "POST"] : ["POST"]

    return (request: IncomingMessage, requestId: string, clientIp: string) =>
      Effect.gen(function* () {
        const method = request.method ?? "GET"
        const headers = request.headers as Readonly<Record<string, string | undefined>>
        if (method === "OPTIONS") {
          return headers.origin !== undefined && headers["access-control-request-method"] !== undefined
            ? Cors.preflight(options.cors, headers.origin, methods)
            : HttpServerResponse.empty({ status: 204, headers: { allow: methods.join(", ") } })
        }
        // Production has no GraphiQL and no GraphQL over GET (queries in URLs end up in logs): no such route.
        if (method === "GET" && !options.development) return Problem.response(404, "no such route")
        if (!methods.includes(method)) {
          return HttpServerResponse.setHeader(
            Problem.response(405, `${method} is not allowed here; use ${methods.join(", ")}`),
            "allow",
            methods.join(", "),
          )
        }
        if (Number(headers["content-length"] ?? 0) > options.maxBodyBytes) {
          return Problem.response(413, `request body is larger than ${options.maxBodyBytes} bytes`)
        }
        const body = method === "POST" ? yield* bodyOf(request, options.maxBodyBytes) : undefined
        if (method === "POST" && body === undefined) {
          return Problem.response(413, `request body is larger than ${options.maxBodyBytes} bytes`)
        }
        const { yoga, schemaOf } = yield* server
        const schema = schemaOf(yield* document.get)
        const caller: Caller = {
          authorization: headers.authorization,
          requestId,
          clientIp,
          peer: request.socket.remoteAddress,
          incoming: headers,
        }
        // Each field runs in this request's context (its span, request id, client address).
        const context = yield* Effect.context<never>()
        const call = (rest: RestCall): Promise<RestAnswer> =>
          Effect.runPromiseWith(context)(
            dispatch(rest, caller).pipe(
              Effect.catchCause((cause) =>
                Effect.logError("graphql field's request failed", cause).pipe(
                  Effect.andThen(errors.capture({ cause, origin: "http", route: GRAPHQL_PATH })),
                  Effect.as({ status: 500, contentType: undefined, text: "" }),
                ),
              ),
            ),
          )
        const web = new Request(new URL(request.url ?? GRAPHQL_PATH, "http://gateway"), {
          method,
          headers: Object.entries(headers).filter((e): e is [string, string] => typeof e[1] === "string"),
          ...(body === undefined ? {} : { body }),
        })
        const answer = yield* Effect.promise(async () => {
          const response = await yoga.handleRequest(web, { schema, call })
          return { response, bytes: new Uint8Array(await response.arrayBuffer()) }
        })
        const type = answer.response.headers.get("content-type") ?? "application/json"
        const own = type.startsWith("text/html") ? GRAPHIQL_HEADERS : JSON_HEADERS
        const extra: Record<string, string> = {}
        const allow = answer.response.headers.get("allow")
        if (allow !== null) extra.allow = allow
        return HttpServerResponse.uint8Array(answer.bytes, {
          status: answer.response.status,
          contentType: type,
          headers: { ...own, ...extra },
        })
      })
  })
