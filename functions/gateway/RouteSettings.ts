import type { ProxyOptions } from "./ProxyOptions.ts"
import type { Counting } from "./RateLimits.ts"
import type { Route } from "./RouteTable.ts"

/** The bucket of the gateway's default limits; a route with a limit of its own counts in a bucket of its own. */
export const DEFAULT_BUCKET = "default"

/** The effective settings of one route. */
export interface RouteSettings {
  readonly timeoutMs: number
  /** Larger request bodies get 413, declared (`Content-Length`) or streamed. */
  readonly maxBodyBytes: number
  readonly ip: { readonly bucket: string; readonly perMinute: number }
  readonly user: { readonly bucket: string; readonly perMinute: number }
}

/** The settings of a route: the gateway's defaults, then the route's manifest, then `GATEWAY_ROUTES` (later wins). */
export const settingsOf = (
  route: Route,
  options: Omit<ProxyOptions, "table" | "cors" | "trustedProxies" | "development">,
) => {
  const own = [
    route,
    ...options.overrides.filter(
      (o) => o.path === route.template && (o.method === undefined || o.method === route.method),
    ),
  ]
  const pick = <K extends "timeoutMs" | "ipPerMinute" | "userPerMinute" | "maxBodyBytes">(key: K) =>
    own.reduce<number | undefined>((value, o) => o[key] ?? value, undefined)
  const name = `${route.method} ${route.template}`
  const ip = pick("ipPerMinute")
  const user = pick("userPerMinute")
  return {
    timeoutMs: pick("timeoutMs") ?? options.timeoutMs,
    maxBodyBytes: pick("maxBodyBytes") ?? options.maxBodyBytes,
    ip: ip === undefined ? { bucket: DEFAULT_BUCKET, perMinute: options.ipPerMinute } : { bucket: name, perMinute: ip },
    user:
      user === undefined
        ? { bucket: DEFAULT_BUCKET, perMinute: options.userPerMinute }
        : { bucket: name, perMinute: user },
  } satisfies RouteSettings
}

/** `settingsOf` for one set of options, each route's worked out once (the proxy and GraphQL's fields ask per request). */
export const routeSettings = (options: Parameters<typeof settingsOf>[1]) => {
  const known = new Map<Route, RouteSettings>()
  return (route: Route): RouteSettings => {
    let found = known.get(route)
    if (found === undefined) {
      found = settingsOf(route, options)
      known.set(route, found)
    }
    return found
  }
}

/**
 * The default limits (the bulk of the traffic) count locally and meet in Redis every sync interval; a route's own
 * limit (declared on its endpoint, as the sign-in routes', or set in `GATEWAY_ROUTES`) counts exactly. Those limits are
 * small and guard costly or abusable work (a password hash, a mail) from a flood, where a synced limit's excess grows
 * with the flood's rate (2 × instances × rate × sync interval); their requests are few, so an exact count's Redis
 * round trip costs little.
 */
export const countingOf = (limit: RouteSettings["ip"]): Counting =>
  limit.bucket === DEFAULT_BUCKET ? "synced" : "exact"
