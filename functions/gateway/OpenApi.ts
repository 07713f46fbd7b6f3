import { Context, Effect, Layer, Option } from "effect"
import { OPENAPI_PATH } from "../../shared/RouteGuard.ts"
import type { RouteTable } from "./RouteTable.ts"
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

/**
 * The platform's public OpenAPI 3.1 document: each upstream's own document, reduced to the operations its manifest
 * routes publicly, with the gateway's view of each (bearer security, `x-required-permission`). Component schemas
 * that two services name alike but define differently are renamed `<service>.<name>` in the second one.
 */
export const merge = (
  table: RouteTable,
  documents: ReadonlyArray<{ readonly upstream: string; readonly document: unknown }>,
  info: { readonly title: string; readonly version: string },
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
      if (isObject(tag) && typeof tag.name === "string") tags.set(tag.name, tag)
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
        const secured =
          route.auth === "public"
            ? { security: [] }
            : {
                security: [{ bearer: [] }],
                ...(typeof route.auth === "object" ? { "x-required-permission": route.auth.permission } : {}),
              }
        paths[template] ??= {}
        paths[template][method] = { ...(renameRefs(operation, renamed) as Json), ...secured, "x-upstream": upstream }
      }
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: info.title,
      version: info.version,
      description:
        "The platform's public HTTP API through the gateway. Errors are RFC 9457 problem+json with a stable `code`.",
    },
    servers: [{ url: "/" }],
    tags: [...tags.values()],
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: { schemas, securitySchemes },
  }
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
            const merged = merge(options.table, documents, { title: "Platform API", version: options.version })
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
