import { Context, Effect, Layer, Option } from "effect"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import {
  addAnswer,
  describeAuth,
  kernelRefusals,
  LICENSE,
  type ProblemAnswer,
  RATE_LIMIT_HEADERS,
  RETRY_AFTER,
} from "../../shared/OpenApiContract.ts"
import { GatewayTimeout, NotFound, ServiceUnavailable, TooManyRequests } from "../../shared/Problem.ts"
import type { RouteSettings } from "./RouteSettings.ts"
import type { Route, RouteTable } from "./RouteTable.ts"
import { ServiceRegistry } from "./ServiceRegistry.ts"

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

// Rewrites every `$ref` to a renamed component schema.
const renameRefs = (value: unknown, renamed: ReadonlyMap<string, string>): unknown => {
  if (Array.isArray(value)) return value.map((v) => renameRefs(v, renamed))
  if (!isObject(value)) return value
  const out: Json = {}
  for (const [key, v] of Object.entries(value)) {
    if (key === "$ref" && typeof v === "string" && v.startsWith("#/components/schemas/")) {
      const name = v.slice("#/components/schemas/".length)
      out[key] = `#/components/schemas/${renamed.get(name) ?? name}`
    } else out[key] = renameRefs(v, renamed)
  }
  return out
}

/** What the gateway itself answers on a route, besides what the upstream does: from its configuration. */
export interface EdgeSettings {
  /** The route's effective timeout, rate limits and body limit (`Http.settingsOf`). */
  readonly settingsOf: (route: Route) => RouteSettings
}

/**
 * Every answer the gateway itself can give on a route, derived from the route's declaration and the gateway's
 * settings (never listed by hand): its auth (401, 403, 503), its limits (429), its body limit (413), a path it cannot
 * route (404), a slow or absent upstream (504, 503), a request Node refuses (400, 408, 431) and a defect (500).
 */
export const edgeAnswers = (route: Route, edge: EdgeSettings): Array<ProblemAnswer> => {
  const settings = edge.settingsOf(route)
  const limits = [
    settings.ip.perMinute > 0 ? `${settings.ip.perMinute} per minute per client address` : undefined,
    route.auth !== "public" && settings.user.perMinute > 0
      ? `${settings.user.perMinute} per minute per user`
      : undefined,
  ].filter((l) => l !== undefined)
  return [
    ...kernelRefusals(settings.maxBodyBytes),
    ...(route.template.includes("{")
      ? [{ problem: NotFound, description: "No such resource, or a path the gateway does not route" }]
      : []),
    ...(limits.length > 0
      ? [
          {
            problem: TooManyRequests,
            description: `Over the rate limit (${limits.join(", ")})`,
            headers: RATE_LIMIT_HEADERS,
          },
        ]
      : []),
    {
      problem: ServiceUnavailable,
      description: `The ${route.upstream} service or a dependency is unavailable; retry later`,
      headers: { "Retry-After": RETRY_AFTER },
    },
    {
      problem: GatewayTimeout,
      description: `The ${route.upstream} service did not answer within ${settings.timeoutMs} ms`,
    },
  ]
}

const DESCRIPTION = `The platform's public HTTP API through the gateway.

Errors are RFC 9457 \`application/problem+json\` with a stable \`code\`. Each operation lists every status it can answer,
including the gateway's own: 401/403 for routes that need a signed-in caller or a permission, 429 (with \`Retry-After\`
and \`RateLimit-*\` headers) where a rate limit applies, 413 for a body over the limit, 404 for a path it cannot route,
503/504 when the service behind it is unavailable or slow, and 400/408/431 for requests Node refuses before any handler.
A method a path does not serve answers 405 with an \`Allow\` header; \`OPTIONS\` answers CORS preflights.`

/**
 * The platform's public OpenAPI 3.1 document: each upstream's own document, reduced to the operations its manifest
 * routes publicly, with the gateway's view of each: its auth (bearer security, `x-required-permission`, 401/403) and
 * every answer the gateway itself can give there (`edgeAnswers`, when `edge` is given). Component schemas that two
 * services name alike but define differently are renamed `<service>.<name>` in the second one; an operationId taken
 * by an earlier service becomes `<service>.<operationId>`.
 */
export const merge = (
  table: RouteTable,
  documents: ReadonlyArray<{ readonly upstream: string; readonly document: unknown }>,
  info: { readonly title: string; readonly version: string },
  edge?: EdgeSettings,
): Json => {
  const paths: Record<string, Json> = {}
  const schemas: Json = {}
  const securitySchemes: Json = {
    bearer: {
      type: "http",
      scheme: "bearer",
      bearerFormat: "JWT",
      description: "Access token from POST /api/v1/auth/login",
    },
  }
  const tags = new Map<string, Json>()
  const routed: Array<{ readonly route: Route; readonly operation: Json }> = []
  const operationIds = new Set<string>()
  for (const { upstream, document } of documents) {
    if (!isObject(document)) continue
    const components = isObject(document.components) ? document.components : {}
    const own = isObject(components.schemas) ? components.schemas : {}
    const renamed = new Map<string, string>()
    for (const [name, schema] of Object.entries(own)) {
      if (name in schemas && JSON.stringify(schemas[name]) !== JSON.stringify(schema)) {
        renamed.set(name, `${upstream}.${name}`)
      }
    }
    for (const [name, schema] of Object.entries(own)) schemas[renamed.get(name) ?? name] = renameRefs(schema, renamed)
    for (const tag of Array.isArray(document.tags) ? document.tags : []) {
      if (!isObject(tag) || typeof tag.name !== "string") continue
      // Two services' groups of one name (each has its own "me") make one tag; their descriptions join.
      const seen = tags.get(tag.name)
      const descriptions = [seen?.description, tag.description].filter((d) => typeof d === "string" && d !== "")
      tags.set(tag.name, {
        ...seen,
        ...tag,
        ...(descriptions.length > 0 ? { description: [...new Set(descriptions)].join(". ") } : {}),
      })
    }
    const ownPaths = isObject(document.paths) ? document.paths : {}
    for (const [template, item] of Object.entries(ownPaths)) {
      if (!isObject(item)) continue
      for (const method of METHODS) {
        const operation = item[method]
        if (!isObject(operation)) continue
        const route = table.routes.find(
          (r) => r.upstream === upstream && r.template === template && r.method.toLowerCase() === method,
        )
        if (route === undefined) continue
        const merged: Json = { ...(renameRefs(operation, renamed) as Json), "x-upstream": upstream }
        if (typeof merged.operationId === "string") {
          const id = operationIds.has(merged.operationId) ? `${upstream}.${merged.operationId}` : merged.operationId
          merged.operationId = id
          operationIds.add(id)
        }
        paths[template] ??= {}
        paths[template][method] = merged
        routed.push({ route, operation: merged })
      }
    }
  }
  const document: Json = {
    openapi: "3.1.0",
    info: { title: info.title, version: info.version, description: DESCRIPTION, license: LICENSE },
    servers: [{ url: "/" }],
    tags: [...tags.values()],
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: { schemas, securitySchemes },
  }
  for (const { route, operation } of routed) {
    describeAuth(document, operation, route.auth)
    for (const answer of edge === undefined ? [] : edgeAnswers(route, edge)) addAnswer(document, operation, answer)
    sortResponses(operation)
  }
  return document
}

// Responses in status order (the additions were appended).
const sortResponses = (operation: Json) => {
  if (!isObject(operation.responses)) return
  operation.responses = Object.fromEntries(
    Object.entries(operation.responses).sort(([a], [b]) => a.localeCompare(b, "en", { numeric: true })),
  )
}

/** The merged public API document, built from the upstreams' live `/openapi.json` and cached for a while. */
export class OpenApiDocument extends Context.Service<
  OpenApiDocument,
  {
    /** The merged document; upstreams that do not answer are left out (and named in `x-unavailable`). */
    readonly get: Effect.Effect<Json>
  }
>()("gateway/OpenApiDocument") {
  /** Fetches each upstream's `/openapi.json` (2 s each), merges, and keeps the result `cacheMs` (default 30 s). */
  static readonly layer = (options: {
    readonly table: RouteTable
    readonly version: string
    /** The gateway's own answers on each route are documented from these settings. */
    readonly edge?: EdgeSettings
    readonly cacheMs?: number
  }) =>
    Layer.effect(
      OpenApiDocument,
      Effect.gen(function* () {
        const registry = yield* ServiceRegistry
        const upstreams = [...new Set(options.table.routes.map((r) => r.upstream))].sort()
        const fetchOne = (upstream: string) =>
          Effect.gen(function* () {
            const origin = yield* registry.resolve(upstream)
            if (Option.isNone(origin)) return Option.none<unknown>()
            return yield* Effect.tryPromise(async () => {
              const response = await fetch(new URL(OPENAPI_PATH, origin.value), {
                signal: AbortSignal.timeout(2_000),
              })
              if (!response.ok) throw new Error(`status ${response.status}`)
              return (await response.json()) as unknown
            }).pipe(
              Effect.map(Option.some),
              Effect.catch((error) =>
                Effect.as(
                  Effect.logWarning("upstream OpenAPI unavailable", { upstream, error: String(error) }),
                  Option.none(),
                ),
              ),
            )
          })
        const build = Effect.forEach(
          upstreams,
          (upstream) => Effect.map(fetchOne(upstream), (doc) => [upstream, doc] as const),
          {
            concurrency: "unbounded",
          },
        ).pipe(
          Effect.map((results) => {
            const documents = results.flatMap(([upstream, doc]) =>
              Option.isSome(doc) ? [{ upstream, document: doc.value }] : [],
            )
            const missing = results.filter(([, doc]) => Option.isNone(doc)).map(([upstream]) => upstream)
            const merged = merge(
              options.table,
              documents,
              { title: "Platform API", version: options.version },
              options.edge,
            )
            return {
              merged: missing.length > 0 ? { ...merged, "x-unavailable": missing } : merged,
              complete: missing.length === 0,
            }
          }),
        )
        const cacheMs = options.cacheMs ?? 30_000
        let cached: { readonly value: Json; readonly until: number } | undefined
        const get = Effect.suspend(() => {
          if (cached !== undefined && cached.until > Date.now()) return Effect.succeed(cached.value)
          return Effect.map(build, ({ merged, complete }) => {
            // An incomplete document is kept only briefly, so a late upstream appears soon.
            cached = { value: merged, until: Date.now() + (complete ? cacheMs : Math.min(cacheMs, 2_000)) }
            return merged
          })
        }).pipe(Effect.withSpan("OpenApiDocument.get"))
        return OpenApiDocument.of({ get })
      }),
    )
}
