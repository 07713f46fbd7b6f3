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
  /**
   * Serve the development listings (never in production): `GET /_dev/errors`, every function's recent error reports,
   * and `GET /_dev/mail`, every function's dev mailbox, each merged newest first (DevListings.ts).
   */
  readonly development: boolean
}
