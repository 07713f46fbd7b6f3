import { Effect, Metric } from "effect"
import { HttpRouter, HttpServerRequest } from "effect/http"
import type { RouteSpec } from "../Module.ts"
import * as Problem from "../Problem.ts"
import { asCaller, bearerToken, refuse, Verifier } from "./Authentication.ts"
import { Permissions } from "./Permissions.ts"

const denials = Metric.counter("http_server_permission_denials_total", {
  description: "Requests refused by a function's own route guard for a missing permission",
  incremental: true,
})

// "/api/v1/users/{id}" and "/api/v1/users/:userId" are the same route: parameters compare by position only.
const shape = (method: string, path: string) =>
  `${method.toUpperCase()} ${path
    .split("/")
    .map((s) => (s.startsWith(":") || (s.startsWith("{") && s.endsWith("}")) ? "*" : s))
    .join("/")}`

/** Where every function publishes its HTTP contract (public: the gateway merges them into the platform's document). */
export const OPENAPI_PATH = "/openapi.json"

/** The declared auth of each route of a manifest, by method and path shape, plus the public contract document. */
export const table = (routes: ReadonlyArray<RouteSpec>) =>
  new Map<string, RouteSpec["auth"]>([
    [shape("GET", OPENAPI_PATH), "public"],
    ...routes.map((r) => [shape(r.method, r.path), r.auth] as const),
  ])

/** The declaration of a served route (method and router path), if the manifest has one. */
export const declared = (routes: ReturnType<typeof table>, method: string, path: string) =>
  routes.get(shape(method, path))

/**
 * Zero trust at the function: every route it serves is enforced here from the manifest's declaration, the same one the
 * gateway reads, whoever sent the request (the gateway, another pod, a Lambda invocation). "public" passes; "user"
 * needs a valid, unrevoked access token (401 otherwise); `{ permission }` needs one whose user holds the permission
 * (403 otherwise; answers cached ≤ 500 ms and cleared by authz's events, see `Permissions`). A route the manifest
 * does not declare is refused (fail closed) and logged as a bug. Needs `Verifier` when any route is not open, and `Permissions` when any route
 * needs a permission (checked at start); a function whose routes are all open needs neither.
 */
export const layer = (routes: ReadonlyArray<RouteSpec>) =>
  HttpRouter.middleware(
    Effect.gen(function* () {
      const verifierOption = yield* Effect.serviceOption(Verifier)
      const permissions = yield* Effect.serviceOption(Permissions)
      const auths = table(routes)
      const needed = routes.find((r) => typeof r.auth === "object")
      if (needed !== undefined && permissions._tag === "None") {
        return yield* Effect.die(
          `${needed.method} ${needed.path} needs a permission check, but no Permissions is provided`,
        )
      }
      const signedIn = routes.find((r) => r.auth !== "public")
      if (signedIn !== undefined && verifierOption._tag === "None") {
        return yield* Effect.die(
          `${signedIn.method} ${signedIn.path} needs a caller's token, but no Verifier is provided`,
        )
      }
      // Only open routes (checked above) when there is no verifier: it is never asked.
      const verifier = verifierOption._tag === "Some" ? verifierOption.value : undefined
      return (httpEffect) =>
        Effect.gen(function* () {
          const { route } = yield* HttpRouter.RouteContext
          const auth = declared(auths, route.method, route.path)
          if (auth === undefined) {
            yield* Effect.logError("route served but not declared in the manifest: refused", {
              route: `${route.method} ${route.path}`,
            })
            return Problem.response(403, "this route is not declared by the function")
          }
          if (auth === "public") return yield* httpEffect
          const request = yield* HttpServerRequest.HttpServerRequest
          const token = bearerToken(request.headers.authorization)
          if (token === undefined) return yield* refuse("malformed")
          if (verifier === undefined) return Problem.response(503, "this route cannot verify callers")
          const verified = yield* Effect.result(verifier.authenticate(token))
          if (verified._tag === "Failure") {
            const error = verified.failure
            return error._tag === "Refused" ? yield* refuse(error.reason) : Problem.response(503, error.detail)
          }
          const claims = verified.success
          if (auth !== "user" && permissions._tag === "Some") {
            const allowed = yield* Effect.result(permissions.value.check(claims.sub, auth.permission))
            if (allowed._tag === "Failure") return Problem.response(503, allowed.failure.detail)
            if (!allowed.success) {
              yield* Metric.update(Metric.withAttributes(denials, { permission: auth.permission }), 1)
              return Problem.response(403, `this needs the permission ${auth.permission}`)
            }
          }
          return yield* asCaller(httpEffect, claims)
        })
    }),
  ).layer
