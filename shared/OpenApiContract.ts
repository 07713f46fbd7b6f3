import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, OpenApi } from "effect/http-api"
import type { RouteSpec } from "./Module.ts"
import * as Problem from "./Problem.ts"
import {
  BadRequest,
  Forbidden,
  InternalError,
  PayloadTooLarge,
  RequestHeaderFieldsTooLarge,
  RequestTimeout,
  ServiceUnavailable,
  Unauthorized,
  ValidationFailed,
} from "./Problem.ts"

/**
 * What Node and the kernel refuse before any handler, and a defect: any route can answer these, a function's and the
 * gateway's alike (the body limit is the server's own).
 */
export const kernelRefusals = (maxBodyBytes?: number) =>
  [
    { problem: BadRequest, description: "The request is not valid HTTP" },
    { problem: RequestTimeout, description: "The request took too long to arrive" },
    {
      problem: PayloadTooLarge,
      description:
        maxBodyBytes === undefined
          ? "The request body is larger than the limit"
          : `The request body is larger than ${maxBodyBytes} bytes`,
    },
    { problem: RequestHeaderFieldsTooLarge, description: "The request's header fields are too large" },
    { problem: InternalError, description: "A defect; the answer carries no details" },
  ] as const satisfies ReadonlyArray<ProblemAnswer>

/**
 * The problems the kernel answers on any route of a function, around its handler: 400 (a field of the request breaks
 * the contract, a NUL character, a request that is not valid HTTP), 408 and 431 (Node refuses the request before any
 * handler), 413 (a body over the limit), 500 (a defect). Every function's HttpApi declares it, so each operation of its
 * document lists them; `Server.validationProblems` provides it.
 */
export class KernelProblems extends HttpApiMiddleware.Service<KernelProblems>()("shared/KernelProblems", {
  error: [ValidationFailed, ...kernelRefusals().map((refusal) => refusal.problem)],
}) {}

type Json = Record<string, unknown>
// Every problem class of Problem.ts (its exported error classes), by name: what the kernel and the gateway can add to
// a document, with no second list to keep in step.
const CATALOG: Readonly<Record<string, ProblemClass>> = Object.fromEntries(
  Object.entries(Problem).filter(
    ([name, value]) => /^[A-Z]/.test(name) && typeof value === "function" && value.prototype instanceof Error,
  ),
) as Record<string, ProblemClass>

type ProblemClass = {
  [K in keyof typeof Problem]: (typeof Problem)[K] extends abstract new (
    ...args: never
  ) => Error
    ? (typeof Problem)[K]
    : never
}[keyof typeof Problem]

/** A problem the platform answers with, as OpenAPI: its status, its schema (a component) and that component's own. */
interface ProblemSchema {
  readonly status: number
  readonly ref: string
  readonly components: Json
}

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

// The object under `key`, made (as `initial`) when there is none.
const child = (parent: Json, key: string, initial: () => Json = () => ({})): Json => {
  const existing = parent[key]
  if (isObject(existing)) return existing
  const made = initial()
  parent[key] = made
  return made
}

// Each problem's schema exactly as Effect renders it for a function's own document (same component names and bodies),
// so merging a function's document with the gateway's additions never holds two versions of one component. Rendered
// when a document is first built, not when a function starts (every function's Server imports this module).
let rendered: Record<string, ProblemSchema> | undefined
const catalog = (): Record<string, ProblemSchema> => (rendered ??= renderCatalog())
const renderCatalog = (): Record<string, ProblemSchema> => {
  const endpoints = Object.entries(CATALOG).map(([name, problem]) =>
    HttpApiEndpoint.get(name, `/${name}`, { error: problem as typeof ValidationFailed }),
  )
  const [first, ...rest] = endpoints
  const group = HttpApiGroup.make("problems").add(first!, ...rest)
  const document = OpenApi.fromApi(HttpApi.make("problems").add(group)) as unknown as Json
  const schemas = (document.components as { schemas: Json }).schemas
  const paths = document.paths as Record<string, { get: { responses: Record<string, Json> } }>
  const refsIn = (value: unknown, into: Set<string>): Set<string> => {
    if (Array.isArray(value)) for (const v of value) refsIn(v, into)
    else if (isObject(value)) {
      for (const [key, v] of Object.entries(value)) {
        if (key === "$ref" && typeof v === "string") {
          const name = v.slice("#/components/schemas/".length)
          if (!into.has(name)) {
            into.add(name)
            refsIn(schemas[name], into)
          }
        } else refsIn(v, into)
      }
    }
    return into
  }
  const out: Record<string, ProblemSchema> = {}
  for (const name of Object.keys(CATALOG)) {
    const responses = paths[`/${name}`]!.get.responses
    const [status, response] = Object.entries(responses).find(([s]) => s !== "200" && s !== "204")!
    const content = (response.content as Record<string, { schema: { $ref: string } }>)["application/problem+json"]!
    const ref = content.schema.$ref
    out[name] = {
      status: Number(status),
      ref,
      components: Object.fromEntries([...refsIn(content.schema, new Set())].map((n) => [n, schemas[n]])),
    }
  }
  return out
}

/** A response header as documented. */
export interface HeaderDoc {
  readonly description: string
  readonly schema: Json
}

/** An answer an operation can give: a problem (by class), why, and the headers that come with it. */
export interface ProblemAnswer {
  readonly problem: ProblemClass
  readonly description: string
  readonly headers?: Readonly<Record<string, HeaderDoc>>
}

const integer = { type: "integer", minimum: 0 }

/** `Retry-After` (seconds), as a 429 and most 503s send it. */
export const RETRY_AFTER: HeaderDoc = { description: "Seconds to wait before retrying", schema: integer }

/** The headers of a 429: when to retry and the window's limit (draft IETF RateLimit fields). */
export const RATE_LIMIT_HEADERS: Readonly<Record<string, HeaderDoc>> = {
  "Retry-After": RETRY_AFTER,
  "RateLimit-Limit": { description: "Requests allowed in the window", schema: integer },
  "RateLimit-Remaining": { description: "Requests left in the window", schema: integer },
  "RateLimit-Reset": { description: "Seconds until the window resets", schema: integer },
}

/** The 401 of a route that needs a signed-in caller (the guard's and the edge's answer, with its challenge). */
export const unauthenticated: ProblemAnswer = {
  problem: Unauthorized,
  description: "No bearer access token, or one that is invalid, expired or revoked",
  headers: { "WWW-Authenticate": { description: "The Bearer challenge", schema: { type: "string" } } },
}

/** The 403 of a route that needs a permission. */
export const forbidden = (permission: string): ProblemAnswer => ({
  problem: Forbidden,
  description: `The caller does not hold the permission \`${permission}\``,
})

/** The 503 of a signed-in route whose token or permission cannot be checked right now. */
export const checksUnavailable: ProblemAnswer = {
  problem: ServiceUnavailable,
  description: "A dependency is unavailable; retry later",
  headers: { "Retry-After": RETRY_AFTER },
}

const problemMedia = "application/problem+json"

const refsOf = (schema: unknown): Array<Json> =>
  isObject(schema) && Array.isArray(schema.anyOf) ? (schema.anyOf as Array<Json>) : isObject(schema) ? [schema] : []

/**
 * Adds an answer to an operation of a document (mutating both): the problem's schema joins the status's problem+json
 * schemas (`anyOf`) unless it is already there, its component is added, and its headers are listed.
 */
export const addAnswer = (document: Json, operation: Json, answer: ProblemAnswer): void => {
  const entry = Object.entries(CATALOG).find(([, problem]) => problem === answer.problem)
  if (entry === undefined) throw new Error("not a catalogued problem")
  const problem = catalog()[entry[0]]!
  const components = child(document, "components")
  const schemas = child(components, "schemas")
  for (const [name, schema] of Object.entries(problem.components)) schemas[name] ??= schema
  const responses = child(operation, "responses")
  const status = String(problem.status)
  const response = child(responses, status, () => ({ description: answer.description }))
  const content = child(response, "content")
  const media = child(content, problemMedia)
  const existing = refsOf(media.schema)
  if (!existing.some((s) => s.$ref === problem.ref)) {
    const all = [...existing, { $ref: problem.ref }]
    media.schema = all.length === 1 ? all[0] : { anyOf: all }
  }
  if (answer.headers !== undefined) {
    const headers = child(response, "headers")
    for (const [name, header] of Object.entries(answer.headers)) {
      const key = Object.keys(headers).find((h) => h.toLowerCase() === name.toLowerCase()) ?? name
      headers[key] ??= { description: header.description, schema: header.schema, required: false }
    }
  }
}

const METHODS = ["get", "put", "post", "delete", "patch"] as const

// "/api/v1/users/{id}" and "/api/v1/users/{userId}" are the same route: parameters compare by position only.
const shape = (method: string, path: string) =>
  `${method.toUpperCase()} ${path.replace(/\{[^}]+\}/g, "{}").replace(/:[^/]+/g, "{}")}`

/** Every operation of a document with its method and path. */
export const operations = (document: Json): Array<{ method: string; path: string; operation: Json }> => {
  const out: Array<{ method: string; path: string; operation: Json }> = []
  for (const [path, item] of Object.entries(isObject(document.paths) ? document.paths : {})) {
    if (!isObject(item)) continue
    for (const method of METHODS) {
      const operation = item[method]
      if (isObject(operation)) out.push({ method, path, operation })
    }
  }
  return out
}

/**
 * What a route's declared auth adds to its operation (the route guard enforces it in the function, the gateway at the
 * edge): a signed-in route needs the bearer token (401 without one, 503 when it cannot be checked); a permission route
 * also answers 403 and names the permission in `x-required-permission`. Public routes need nothing.
 */
export const describeAuth = (document: Json, operation: Json, auth: RouteSpec["auth"]): void => {
  if (auth === "public") {
    operation.security = []
    return
  }
  const components = child(document, "components")
  const schemes = child(components, "securitySchemes")
  schemes.bearer ??= { type: "http", scheme: "bearer", bearerFormat: "JWT" }
  operation.security = [{ bearer: [] }]
  addAnswer(document, operation, unauthenticated)
  addAnswer(document, operation, checksUnavailable)
  if (typeof auth === "object") {
    operation["x-required-permission"] = auth.permission
    addAnswer(document, operation, forbidden(auth.permission))
  }
}

/**
 * OpenAPI annotations for a function's HttpApi that complete its document from the manifest's route declarations:
 * each declared route's operation gets the answers of its auth (see `describeAuth`), so a new route is documented as
 * the guard serves it without anything written twice. Use with `HttpApi.annotateMerge`.
 */
export const fromRoutes = (routes: ReadonlyArray<RouteSpec>, info: { readonly description?: string } = {}) =>
  OpenApi.annotations({
    ...info,
    license: LICENSE,
    transform: (spec) => {
      const document = spec as Json
      const declared = new Map(routes.map((r) => [shape(r.method, r.path), r.auth] as const))
      for (const { method, path, operation } of operations(document)) {
        const auth = declared.get(shape(method, path))
        if (auth !== undefined) describeAuth(document, operation, auth)
      }
      return document
    },
  })

/** The license the platform's API documents state. */
export const LICENSE = { name: "Proprietary", identifier: "LicenseRef-Proprietary" } as const
