// The platform's typed API client: openapi-fetch over the types generated from the gateway's /openapi.json
// (client/openapi.ts, by `npm run client`). Every path, parameter, body and answer is typed from that document.
import createClient, { type Client } from "openapi-fetch"
import type { components, paths } from "./openapi.ts"

export type { components, operations, paths } from "./openapi.ts"

/** A client of the platform's API: `GET`, `POST`, `PUT`, `PATCH`, `DELETE` on its documented paths. */
export type PlatformClient = Client<paths>

type Schemas = components["schemas"]

/**
 * Any RFC 9457 problem the API documents (`application/problem+json`): a union discriminated by its stable `code`.
 * Each operation's `error` is narrower: the problems that operation lists.
 */
export type Problem = {
  [K in keyof Schemas]: Schemas[K] extends { readonly code: string; readonly type: `urn:problem:${string}` }
    ? Schemas[K]
    : never
}[keyof Schemas]

/** Whether a value is a problem+json body of the platform's (its `type` is one of the `urn:problem:` URNs). */
export const isProblem = (value: unknown): value is Problem =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as { code?: unknown }).code === "string" &&
  typeof (value as { type?: unknown }).type === "string" &&
  (value as { type: string }).type.startsWith("urn:problem:")

export interface PlatformClientOptions {
  /** The access token to send as `Authorization: Bearer`, read on each request (none: no header). */
  readonly token?: () => string | undefined
  /** The fetch to use (default the global one). */
  readonly fetch?: (request: Request) => Promise<Response>
}

/**
 * A typed client of the platform's API at `baseUrl` (the gateway's origin, e.g. `http://localhost:8080`). Each call
 * answers `{ data, response }` on success or `{ error, response }` with the operation's typed problem otherwise.
 */
export const createPlatformClient = (baseUrl: string, options: PlatformClientOptions = {}): PlatformClient => {
  const client = createClient<paths>({ baseUrl, ...(options.fetch === undefined ? {} : { fetch: options.fetch }) })
  const { token } = options
  if (token !== undefined) {
    client.use({
      onRequest: ({ request }) => {
        const value = token()
        if (value !== undefined && value !== "") request.headers.set("authorization", `Bearer ${value}`)
        return request
      },
    })
  }
  return client
}

/** What an answer that is not one of the platform's problems (say, a proxy's HTML page) is seen as (RFC 9457 §4.2.1). */
export interface UntypedProblem {
  readonly type: "about:blank"
  readonly title: string
  readonly status: number
  readonly detail?: string
}

/** A call's failure: its status and the problem+json it answered (or, when it answered none, an `about:blank` one). */
export class ProblemError<P = Problem> extends Error {
  readonly status: number
  readonly problem: P | UntypedProblem
  constructor(status: number, problem: P | UntypedProblem) {
    const { detail, title, code } = problem as { detail?: string; title?: string; code?: string }
    super(`${status} ${detail ?? title ?? code ?? "error"}`)
    this.name = "ProblemError"
    this.status = status
    this.problem = problem
  }
}

type Answer = { readonly data?: unknown; readonly error?: unknown; readonly response: Response }

/** A successful call's data: `undefined` for an operation that answers no body (204). */
export type DataOf<R extends Answer> = [Exclude<R["data"], undefined>] extends [never]
  ? undefined
  : Exclude<R["data"], undefined>

/**
 * The data of a call that succeeded, or a `ProblemError` carrying the operation's typed problem:
 * `const me = await ok(client.GET("/api/v1/users/me"))`.
 */
export const ok = async <R extends Answer>(call: Promise<R> | R): Promise<DataOf<R>> => {
  const { data, error, response } = await call
  if (response.ok) return data as DataOf<R>
  throw new ProblemError<NonNullable<R["error"]>>(
    response.status,
    isProblem(error)
      ? (error as NonNullable<R["error"]>)
      : {
          type: "about:blank",
          title: response.statusText,
          status: response.status,
          ...(typeof error === "string" && error !== "" ? { detail: error } : {}),
        },
  )
}
