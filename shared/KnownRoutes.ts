import { HttpServerResponse } from "effect/http"
import { HttpApi } from "effect/http-api"
import * as Problem from "./Problem.ts"

/** Any HttpApi definition (structurally: something with groups). */
export type ApiLike = { readonly groups: object }

/** A route template (`/users/:id`) of an endpoint, as a matcher, with its method. */
export interface KnownRoute {
  readonly method: string
  readonly pattern: RegExp
}

/** The method and path matcher of every endpoint of an HttpApi. */
export const knownRoutes = (api: ApiLike): Array<KnownRoute> => {
  const routes: Array<KnownRoute> = []
  HttpApi.reflect(api as HttpApi.Top, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => routes.push({ method: endpoint.method, pattern: templateToRegExp(endpoint.path) }),
  })
  return routes
}

const templateToRegExp = (template: string) =>
  new RegExp(
    `^${template
      .split("/")
      .map((s) => (s.startsWith(":") ? "[^/]+" : s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/")}/?$`,
  )

// 404 for a path that exists under other methods becomes 405 with the allowed methods.
export const methodNotAllowed = (routes: ReadonlyArray<KnownRoute>, method: string, url: string) => {
  const path = url.split("?")[0] ?? url
  const allow = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))]
  if (allow.length === 0 || allow.includes(method)) return undefined
  return HttpServerResponse.setHeader(
    Problem.response(405, `${method} is not allowed here; use ${allow.join(", ")}`),
    "allow",
    allow.join(", "),
  )
}
