import { Cookies } from "effect/http"
import type { Quota } from "./RateLimits.ts"

// RFC 9110 §7.6.1 hop-by-hop headers, plus those the gateway sets itself.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
])
const SET_BY_GATEWAY = new Set([
  "host",
  "expect",
  "x-request-id",
  "traceparent",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "forwarded",
])

// Dropped on the way upstream: hop-by-hop and the ones the gateway sets (one lookup per header on the hot path).
const NOT_FORWARDED = new Set([...HOP_BY_HOP, ...SET_BY_GATEWAY])
const NONE: ReadonlySet<string> = new Set()

// The headers `Connection` names hop-by-hop; most requests and answers have none, or only `keep-alive`/`close`
// (hop-by-hop already): no set made for those.
const connectionTokens = (value: string | Array<string> | undefined): ReadonlySet<string> => {
  if (value === undefined) return NONE
  if (typeof value === "string") {
    const plain = value.toLowerCase()
    if (plain === "keep-alive" || plain === "close") return NONE
  }
  return new Set(
    (Array.isArray(value) ? value.join(",") : value)
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t.length > 0),
  )
}

/** The headers sent upstream: the client's end-to-end headers (Authorization unchanged) plus the forwarding ones. */
export const upstreamHeaders = (
  incoming: Readonly<Record<string, string | Array<string> | undefined>>,
  context: {
    readonly requestId: string
    readonly traceparent: string | undefined
    readonly peer: string | undefined
    readonly trustedPeer: boolean
  },
): Record<string, string | Array<string>> => {
  const listed = connectionTokens(incoming.connection)
  const out: Record<string, string | Array<string>> = {}
  for (const name in incoming) {
    const value = incoming[name]
    if (value === undefined || NOT_FORWARDED.has(name) || listed.has(name)) continue
    out[name] = value
  }
  const single = (value: string | Array<string> | undefined) => (Array.isArray(value) ? value.join(", ") : value)
  const priorFor = context.trustedPeer ? single(incoming["x-forwarded-for"]) : undefined
  if (context.peer !== undefined) out["x-forwarded-for"] = priorFor ? `${priorFor}, ${context.peer}` : context.peer
  out["x-forwarded-proto"] = (context.trustedPeer ? single(incoming["x-forwarded-proto"]) : undefined) ?? "http"
  const host = (context.trustedPeer ? single(incoming["x-forwarded-host"]) : undefined) ?? single(incoming.host)
  if (host !== undefined) out["x-forwarded-host"] = host
  out["x-request-id"] = context.requestId
  if (context.traceparent !== undefined) out.traceparent = context.traceparent
  return out
}

// The upstream's headers without hop-by-hop ones; Set-Cookie goes through the cookie jar (it cannot be comma-joined).
export const downstream = (headers: Readonly<Record<string, string | Array<string> | undefined>>) => {
  const listed = connectionTokens(headers.connection)
  const out: Record<string, string> = {}
  let cookies = Cookies.empty
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || name === "x-request-id") continue
    if (name === "set-cookie") cookies = Cookies.fromSetCookie(value)
    else out[name] = Array.isArray(value) ? value.join(", ") : value
  }
  return { headers: out, cookies }
}

/** A quota in the RateLimit-* headers. */
export const rateLimitHeaders = (quota: Quota) => ({
  "ratelimit-limit": String(quota.limit),
  "ratelimit-remaining": String(quota.remaining),
  "ratelimit-reset": String(quota.resetSeconds),
})
