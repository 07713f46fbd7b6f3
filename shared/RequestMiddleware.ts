import { randomUUID } from "node:crypto"
import { ByteSize, Effect, type Types } from "effect"
import { HttpIncomingMessage, HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { clientIp } from "./ClientAddress.ts"
import { ErrorBus } from "./ErrorBus.ts"
import { RouteCell, recordRequest } from "./HttpMetrics.ts"
import { declaredBodyLimit, type KnownRoute, methodNotAllowed } from "./KnownRoutes.ts"
import { refuseNul } from "./NulRefusal.ts"
import * as Problem from "./Problem.ts"
import { causeToResponse, isUnexpected, normalize } from "./ProblemResponses.ts"
import { ClientIp, isSaneId, RequestId } from "./RequestContext.ts"
import type { TrustedProxies } from "./TrustedProxies.ts"

/**
 * Global middleware: request id, log annotation, body limit (`maxBodyBytes`, or the route's own where it declares
 * one), problem+json for every error (a defect, or a failure answered 500, also goes to the error bus with its route,
 * request id and trace), RED metrics.
 */
export const requestMiddleware = (
  maxBodyBytes: number,
  routes: ReadonlyArray<KnownRoute> = [],
  trusted: TrustedProxies = () => false,
) => {
  // Most functions have none: their requests never look a route up for it.
  const sized = routes.filter((r) => r.maxBodyBytes !== undefined)
  return HttpRouter.middleware<{ handles: unknown }>()(
    // The bus is taken when the middleware is built: a Lambda's web handler runs requests without the app's layers.
    Effect.map(
      Effect.service(ErrorBus),
      (errors) =>
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
            const limit =
              sized.length === 0
                ? maxBodyBytes
                : (declaredBodyLimit(sized, request.method, request.url) ?? maxBodyBytes)
            const handled =
              declared > limit
                ? Problem.response(413, `request body is larger than ${limit} bytes`)
                : yield* Effect.flatMap(refuseNul(request), (refused) =>
                    refused === undefined ? httpEffect : Effect.succeed(refused),
                  ).pipe(
                    // Inside the request's context, so that its log line and report carry the request id.
                    Effect.catchCause((cause) =>
                      Effect.tap(causeToResponse(cause), (response) =>
                        isUnexpected(cause, response.status)
                          ? errors.capture({ cause, origin: "http", route: cell.route })
                          : Effect.void,
                      ),
                    ),
                    Effect.provideService(RouteCell, cell),
                    Effect.provideService(RequestId, requestId),
                    Effect.provideService(ClientIp, yield* clientIp(request, trusted)),
                    Effect.provideService(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(limit)),
                    Effect.annotateLogs({ request_id: requestId }),
                  )
            const response = normalize(
              (handled.status === 404 && cell.route === "unmatched"
                ? methodNotAllowed(routes, request.method, request.url)
                : undefined) ?? handled,
            )
            yield* recordRequest(request.method, cell.route, response.status, (performance.now() - started) / 1000)
            return HttpServerResponse.setHeader(response, "x-request-id", requestId)
          }),
    ),
    { global: true },
  )
}
