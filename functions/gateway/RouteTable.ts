import { DEV_MAIL_PATH } from "../../shared/DevMailbox.ts"
import { DEV_ERRORS_PATH } from "../../shared/ErrorBus.ts"
import type { ModuleManifest, RouteSpec } from "../../shared/Module.ts"
import * as AccountPages from "./AccountPages.ts"
import { isConsolePath } from "./console/Console.ts"
import { GRAPHQL_PATH } from "./graphql/Path.ts"

/** What a route needs of the caller: nothing, a valid access token, or a token plus a permission. */
export type RouteAuth = RouteSpec["auth"]

/** One public route of the platform: where it goes and what it needs. */
export interface Route {
  readonly method: string
  /** OpenAPI-style template, e.g. `/api/v1/users/{id}`. */
  readonly template: string
  /** The function (upstream) serving it. */
  readonly upstream: string
  readonly auth: RouteAuth
  /** The manifest's own timeout and limits for the route, if it sets them. */
  readonly timeoutMs?: number
  readonly ipPerMinute?: number
  readonly userPerMinute?: number
  readonly maxBodyBytes?: number
}

/** How a request path and method resolve against the table. */
export type Resolution =
  | { readonly _tag: "Match"; readonly route: Route }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "MethodNotAllowed"; readonly allow: ReadonlyArray<string> }

interface Compiled extends Route {
  // Literal segments as strings, parameters as null.
  readonly segments: ReadonlyArray<string | null>
}

// Percent-encoded `/`, `\` and `.`, and dot segments: a path the gateway and a service could split differently.
const AMBIGUOUS = /%2f|%5c|%2e/i

const compile = (route: Route): Compiled => ({
  ...route,
  segments: route.template
    .split("/")
    .slice(1)
    .map((s) => (s.startsWith("{") && s.endsWith("}") ? null : s)),
})

// Literal segments before parameters, left to right: `/users/me` wins over `/users/{id}`.
const bySpecificity = (a: Compiled, b: Compiled) => {
  const n = Math.min(a.segments.length, b.segments.length)
  for (let i = 0; i < n; i++) {
    const [x, y] = [a.segments[i] === null ? 1 : 0, b.segments[i] === null ? 1 : 0]
    if (x !== y) return x - y
  }
  return a.segments.length - b.segments.length
}

const matches = (route: Compiled, parts: ReadonlyArray<string>) =>
  route.segments.length === parts.length &&
  route.segments.every((s, i) => (s === null ? parts[i] !== "" : s === parts[i]))

/** The routing table of the gateway, compiled from manifests; GET routes answer HEAD too. */
export interface RouteTable {
  readonly routes: ReadonlyArray<Route>
  resolve(method: string, path: string): Resolution
  /** The methods a path accepts (empty for an unknown path). */
  allowed(path: string): ReadonlyArray<string>
}

// Paths the gateway answers itself (through the kernel's router); everything else is proxied.
const OWN_PATHS = new Set([
  "/healthz",
  "/readyz",
  "/metrics",
  "/openapi.json",
  "/readyz/upstreams",
  "/docs",
  GRAPHQL_PATH,
  ...AccountPages.OWN_PATHS,
  // The platform's recent error reports and its dev mailboxes, merged (development only; in production nothing answers
  // them: 404).
  DEV_ERRORS_PATH,
  DEV_MAIL_PATH,
])

/**
 * True for a path the gateway serves itself (health, metrics, the merged OpenAPI, the API reference, GraphQL, the pages
 * the verification and reset mails link to).
 */
export const isOwnPath = (path: string) => OWN_PATHS.has(path) || path.startsWith("/docs/") || isConsolePath(path)

/**
 * Every manifest's public routes, each with its upstream; the same method and template twice, or a template on one of
 * the gateway's own paths (it would never be reached), is an error.
 */
export const routesOf = (manifests: ReadonlyArray<Pick<ModuleManifest, "name" | "routes">>): Array<Route> => {
  const seen = new Map<string, string>()
  const routes: Array<Route> = []
  for (const m of manifests) {
    for (const r of m.routes) {
      const key = `${r.method} ${r.path}`
      const other = seen.get(key)
      if (other !== undefined) throw new Error(`route ${key} is declared by both ${other} and ${m.name}`)
      if (isOwnPath(r.path)) throw new Error(`route ${key} of ${m.name} is a path the gateway serves itself`)
      seen.set(key, m.name)
      routes.push({
        method: r.method,
        template: r.path,
        upstream: m.name,
        auth: r.auth,
        ...(r.timeoutMs === undefined ? {} : { timeoutMs: r.timeoutMs }),
        ...(r.ipPerMinute === undefined ? {} : { ipPerMinute: r.ipPerMinute }),
        ...(r.userPerMinute === undefined ? {} : { userPerMinute: r.userPerMinute }),
        ...(r.maxBodyBytes === undefined ? {} : { maxBodyBytes: r.maxBodyBytes }),
      })
    }
  }
  return routes
}

/** Compiles routes into a table: exact segment matching, literal segments first, no dot or encoded-slash tricks. */
export const make = (routes: ReadonlyArray<Route>): RouteTable => {
  const compiled = routes.map(compile).sort(bySpecificity)
  const candidates = (path: string): Array<Compiled> | undefined => {
    if (!path.startsWith("/") || AMBIGUOUS.test(path)) return undefined
    const parts = path.split("/").slice(1)
    if (parts.some((p) => p === "." || p === "..")) return undefined
    return compiled.filter((r) => matches(r, parts))
  }
  const allowedOf = (found: ReadonlyArray<Compiled>) => {
    const methods = new Set(found.map((r) => r.method))
    if (methods.has("GET")) methods.add("HEAD")
    return [...methods]
  }
  return {
    routes,
    allowed: (path) => allowedOf(candidates(path) ?? []),
    resolve: (method, path) => {
      const found = candidates(path)
      if (found === undefined || found.length === 0) return { _tag: "NotFound" }
      const wanted = method === "HEAD" ? "GET" : method
      const route = found.find((r) => r.method === wanted)
      return route ? { _tag: "Match", route } : { _tag: "MethodNotAllowed", allow: allowedOf(found) }
    },
  }
}

/** The table of the platform's public API from the manifests (the gateway's own manifest has no routes). */
export const fromManifests = (manifests: ReadonlyArray<Pick<ModuleManifest, "name" | "routes">>): RouteTable =>
  make(routesOf(manifests))
