import type { RouteOverride } from "./Config.ts"
import type * as Cors from "./Cors.ts"
import type { RouteTable } from "./RouteTable.ts"

/** What the proxy needs besides its services: the table, limits, timeouts, CORS and the trusted proxies. */
export interface ProxyOptions {
  readonly table: RouteTable
  readonly maxBodyBytes: number
  readonly timeoutMs: number
  readonly ipPerMinute: number
  readonly userPerMinute: number
  readonly overrides: ReadonlyArray<RouteOverride>
  readonly cors: Cors.CorsOptions
  readonly trustedProxies: ReadonlyArray<string>
  /** Proxy `GET /_dev/mail` to identity (never in production). */
  readonly devMail: boolean
  /** Serve `GET /_dev/errors`, every function's recent error reports merged (never in production). */
  readonly devErrors: boolean
}
