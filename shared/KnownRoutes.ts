import { Context, Option } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApi } from "effect/http-api"
import { Declared } from "./access/Route.ts"
import * as Problem from "./Problem.ts"

/** Any HttpApi definition (structurally: something with groups). */
export type ApiLike = { readonly groups: object }

/** A route template (`/users/:id`) of an endpoint, as a matcher, with its method and its own body limit, if any. */
export interface KnownRoute {
  readonly method: string
  readonly pattern: RegExp
  readonly maxBodyBytes?: number
}

/** The method and path matcher of every endpoint of an HttpApi, with the body limit its declaration sets (`Route`). */
export const knownRoutes = (api: ApiLike): Array<KnownRoute> => {
  const routes: Array<KnownRoute> = []
  HttpApi.reflect(api as HttpApi.Top, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      const declared = Context.getOption(endpoint.annotations, Declared)
      const limit = Option.isSome(declared) ? declared.value.maxBodyBytes : undefined
      routes.push({
        method: endpoint.method,
        pattern: templateToRegExp(endpoint.path),
        ...(limit === undefined ? {} : { maxBodyBytes: limit }),
      })
    },
  })
  return routes
}

/** The body limit of the route a request goes to, when that route declares one of its own. */
export const declaredBodyLimit = (routes: ReadonlyArray<KnownRoute>, method: string, url: string) => {
  const path = url.split("?")[0] ?? url
  return routes.find((r) => r.maxBodyBytes !== undefined && r.method === method && r.pattern.test(path))?.maxBodyBytes
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
