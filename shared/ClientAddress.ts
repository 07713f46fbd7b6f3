import { Effect } from "effect"
import type { HttpServerRequest } from "effect/http"
import { ClientIp } from "./RequestContext.ts"
import type { TrustedProxies } from "./TrustedProxies.ts"

/**
 * The client's address: the socket's peer, or the one a trusted proxy forwarded (`X-Forwarded-For`, read right to
 * left, skipping trusted proxies).
 */
export const clientAddress = (peer: string, forwardedFor: string | undefined, trusted: TrustedProxies): string => {
  if (forwardedFor === undefined || !trusted(peer)) return peer
  const hops = forwardedFor.split(",")
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim()
    if (!trusted(hop)) return hop.slice(0, 64)
  }
  return peer
}

// Without a socket (Lambda) the address is the one the entry provided.
export const clientIp = (request: HttpServerRequest.HttpServerRequest, trusted: TrustedProxies) =>
  request.remoteAddress._tag === "None"
    ? ClientIp
    : Effect.succeed(clientAddress(request.remoteAddress.value, request.headers["x-forwarded-for"], trusted))
