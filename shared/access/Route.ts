import { Context } from "effect"
import { HttpApi, type HttpApiEndpoint } from "effect/http-api"
import type { RouteSpec } from "../Module.ts"
import { Authentication } from "./Authentication.ts"

/**
 * What a route may carry besides who may call it: how long the gateway waits for it, its rate limits there, and its
 * body limit (at the gateway and in the function).
 */
export type RouteLimits = Pick<RouteSpec, "timeoutMs" | "ipPerMinute" | "userPerMinute" | "maxBodyBytes">

/**
 * The declaration of a route, annotated on its endpoint in the function's `Api.ts`: the one place a route's access,
 * timeout and limits are said. The function's own guard, its OpenAPI document, the registry's route table and the
 * gateway's table are all derived from it (`routesOf`).
 */
export class Declared extends Context.Service<Declared, Omit<RouteSpec, "method" | "path">>()(
  "shared/access/Route/Declared",
) {}

// The declarations keep each endpoint's own type; only the runtime object's methods are used here.
const top = (endpoint: HttpApiEndpoint.Constraint) => endpoint as unknown as HttpApiEndpoint.Top

/** A route anyone may call (sign-in, public reads). */
export const open =
  (limits: RouteLimits = {}) =>
  <E extends HttpApiEndpoint.Constraint>(endpoint: E): E =>
    top(endpoint).annotate(Declared, { auth: "public", ...limits }) as unknown as E

/**
 * A route for a signed-in caller: a valid, unrevoked access token (401 otherwise). It adds the bearer middleware, so
 * the handler gets `CurrentUser` and the document its bearer security from the same declaration.
 */
export const signedIn =
  (limits: RouteLimits = {}) =>
  <E extends HttpApiEndpoint.Constraint>(endpoint: E): HttpApiEndpoint.AddMiddleware<E, Authentication> =>
    top(endpoint)
      .middleware(Authentication)
      .annotate(Declared, { auth: "user", ...limits }) as never

/** A route for a signed-in caller who holds `permission` (403 otherwise); as `signedIn`, plus the permission check. */
export const requires =
  (permission: string, limits: RouteLimits = {}) =>
  <E extends HttpApiEndpoint.Constraint>(endpoint: E): HttpApiEndpoint.AddMiddleware<E, Authentication> =>
    top(endpoint)
      .middleware(Authentication)
      .annotate(Declared, { auth: { permission }, ...limits }) as never

const METHODS = new Set<string>(["GET", "POST", "PUT", "PATCH", "DELETE"])

/** `/api/v1/users/:id` (the router's form) as `/api/v1/users/{id}` (the OpenAPI and gateway form). */
const template = (path: string) =>
  path
    .split("/")
    .map((s) => (s.startsWith(":") ? `{${s.slice(1)}}` : s))
    .join("/")

/**
 * Every route of a function's HTTP contract with its declaration. An endpoint without one, or whose bearer middleware
 * disagrees with it (a signed-in route without it, an open route with it), is an error naming it: a route is never
 * served with access nobody decided.
 */
export const routesOf = (api: { readonly identifier: string; readonly groups: object }): Array<RouteSpec> => {
  const routes: Array<RouteSpec> = []
  const problems: Array<string> = []
  HttpApi.reflect(api as unknown as HttpApi.HttpApi<string, never>, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      const name = `${endpoint.method} ${endpoint.path}`
      const declared = Context.getOption(endpoint.annotations, Declared)
      if (declared._tag === "None") {
        problems.push(`${name} does not declare who may call it (Route.open, Route.signedIn or Route.requires)`)
        return
      }
      if (!METHODS.has(endpoint.method)) problems.push(`${name}: the platform routes ${[...METHODS].join(", ")} only`)
      const bearer = [...endpoint.middlewares].some((m) => m === (Authentication as unknown))
      if (bearer !== (declared.value.auth !== "public")) {
        problems.push(`${name}: its bearer middleware disagrees with its declaration (use Route.* only)`)
      }
      routes.push({ method: endpoint.method as RouteSpec["method"], path: template(endpoint.path), ...declared.value })
    },
  })
  if (problems.length > 0) throw new Error(`the HTTP contract ${api.identifier}: ${problems.join("; ")}`)
  return routes
}
