import { randomUUID } from "node:crypto"
import { ByteSize, Effect, type Types } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { clientIp } from "./ClientAddress.ts"
import { RouteCell, recordRequest } from "./HttpMetrics.ts"
import { type KnownRoute, methodNotAllowed } from "./KnownRoutes.ts"
import { refuseNul } from "./NulRefusal.ts"
import * as Problem from "./Problem.ts"
import { causeToResponse, normalize } from "./ProblemResponses.ts"
import { ClientIp, isSaneId, RequestId } from "./RequestContext.ts"
import type { TrustedProxies } from "./TrustedProxies.ts"

/** Global middleware: request id, log annotation, body limit, problem+json for every error, RED metrics. */
export const requestMiddleware = (
  maxBodyBytes: number,
  routes: ReadonlyArray<KnownRoute> = [],
  trusted: TrustedProxies = () => false,
) =>
  HttpRouter.middleware<{ handles: unknown }>()(
    (
      httpEffect,
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest> =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const header = request.headers["x-request-id"]
        const requestId = isSaneId(header) ? header : randomUUID()
        const cell = { route: "unmatched" }
        const started = performance.now()
        const declared = Number(request.headers["content-length"] ?? 0)
        const handled =
          declared > maxBodyBytes
            ? Problem.response(413, `request body is larger than ${maxBodyBytes} bytes`)
            : yield* Effect.flatMap(refuseNul(request), (refused) =>
                refused === undefined ? httpEffect : Effect.succeed(refused),
              ).pipe(
                Effect.provideService(RouteCell, cell),
                Effect.provideService(RequestId, requestId),
                Effect.provideService(ClientIp, yield* clientIp(request, trusted)),
                Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(maxBodyBytes)),
                Effect.annotateLogs({ request_id: requestId }),
                Effect.catchCause(causeToResponse),
              )
        const response = normalize(
          (handled.status === 404 && cell.route === "unmatched"
            ? methodNotAllowed(routes, request.method, request.url)
            : undefined) ?? handled,
        )
        yield* recordRequest(request.method, cell.route, response.status, (performance.now() - started) / 1000)
        return HttpServerResponse.setHeader(response, "x-request-id", requestId)
      }),
    { global: true },
  )
