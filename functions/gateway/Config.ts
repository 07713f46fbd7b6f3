import { Config, Effect, Option, Schema } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { httpUrlKey, type ModuleManifest, upstreamsOf } from "../../shared/Module.ts"
import { DEFAULT_SYNC_MS } from "../../shared/RateLimit.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"

/** Per-route settings over the defaults (`GATEWAY_ROUTES`, JSON): a route is `METHOD /template` or every method. */
export const RouteOverride = Schema.Struct({
  method: Schema.optional(Schema.Literals(["GET", "POST", "PUT", "PATCH", "DELETE"])),
  path: Schema.String,
  timeoutMs: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 600_000 }))),
  ipPerMinute: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  userPerMinute: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  maxBodyBytes: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
})

/** Per-route settings over the defaults. */
export type RouteOverride = typeof RouteOverride.Type

/**
 * `RATE_LIMIT_SYNC_MS`: how often the gateway's rate limits are synchronised with Redis (`RateLimit.synced`), at most a
 * second (the excess over a limit grows with it).
 */
export const rateLimitSyncMs = Cfg.intBetween("RATE_LIMIT_SYNC_MS", 0, 1_000).pipe(Config.withDefault(DEFAULT_SYNC_MS))

/** The functions the gateway routes to: every manifest with public routes. */
export const upstreamManifests = (all: ReadonlyArray<ModuleManifest> = manifests) => upstreamsOf(manifest, all)

/** The gateway's configuration keys (the upstream URLs depend on the manifests it routes). */
export const spec = (upstreams: ReadonlyArray<ModuleManifest> = upstreamManifests()) => ({
  ...Cfg.base({ httpPort: manifest.ports.http }),
  ...verifierConfig(manifests),
  /** Redis: rate limits and session revocations shared by every instance; unset = memory (one instance). */
  redisUrl: Config.option(Cfg.secret("REDIS_URL")),
  /** Postgres for the gateway's inbox when it follows events (no Redis): revocations and permission changes. */
  databaseUrl: Config.option(Cfg.secret("DATABASE_URL")),
  dbSchema: Cfg.schemaName("DB_SCHEMA").pipe(Config.withDefault(Cfg.defaultSchema(manifest.name))),
  ...Cfg.pool({ max: 3 }),
  /** How long its inbox keeps handled events' rows (the kernel's retention job, when it has a database). */
  ...Cfg.retention,
  /** Authz's gRPC address, for per-route permission checks. */
  authzGrpcUrl: Cfg.grpcAddress("authz", manifests),
  /** Origins the web console may send requests to besides the gateway's own (its Content-Security-Policy). */
  consoleConnectOrigins: Cfg.commaList("CONSOLE_CONNECT_ORIGINS").pipe(Config.withDefault([] as ReadonlyArray<string>)),
  /** Browser origins allowed by CORS (comma-separated; `*` for any); none by default. */
  corsOrigins: Cfg.commaList("CORS_ORIGINS").pipe(Config.withDefault([] as ReadonlyArray<string>)),
  /** How long an upstream may take to answer (headers) unless the route says otherwise. */
  timeoutMs: Cfg.intBetween("GATEWAY_TIMEOUT_MS", 1, 600_000).pipe(Config.withDefault(10_000)),
  /** Retries of an idempotent request whose upstream connection failed. */
  retries: Cfg.intBetween("GATEWAY_RETRIES", 0, 5).pipe(Config.withDefault(2)),
  /** Consecutive failures (connection errors, timeouts) after which an upstream's circuit opens. */
  breakerFailures: Cfg.intBetween("CIRCUIT_BREAKER_FAILURES", 1, 1000).pipe(Config.withDefault(5)),
  /** How long an open circuit answers 503 before one probe request is let through. */
  breakerCooldownMs: Cfg.intBetween("CIRCUIT_BREAKER_COOLDOWN_MS", 100, 600_000).pipe(Config.withDefault(5_000)),
  /** Keep-alive connections per upstream. */
  upstreamConnections: Cfg.intBetween("UPSTREAM_CONNECTIONS", 1, 10_000).pipe(Config.withDefault(128)),
  /** Requests per minute per client address on every route (0 = unlimited) unless the route says otherwise. */
  ipPerMinute: Cfg.intBetween("RATE_LIMIT_IP_PER_MINUTE", 0, 100_000_000).pipe(Config.withDefault(1_200)),
  /** Requests per minute per signed-in user on every route (0 = unlimited) unless the route says otherwise. */
  userPerMinute: Cfg.intBetween("RATE_LIMIT_USER_PER_MINUTE", 0, 100_000_000).pipe(Config.withDefault(1_200)),
  /**
   * How often each instance sends its rate-limit counts to Redis and reads back the shared ones (the default limits
   * count locally in between; 0 = every request counted in Redis as it comes).
   */
  rateLimitSyncMs,
  /** Namespace of the rate-limit keys in Redis. */
  rateLimitPrefix: Config.String("RATE_LIMIT_PREFIX").pipe(Config.withDefault("gateway-rl")),
  /**
   * Per-route timeouts and limits (JSON array of `{method?, path, timeoutMs?, ipPerMinute?, userPerMinute?,
   * maxBodyBytes?}`).
   */
  routeOverrides: Config.schema(Schema.fromJsonString(Schema.Array(RouteOverride)), "GATEWAY_ROUTES").pipe(
    Config.withDefault([] as ReadonlyArray<RouteOverride>),
  ),
  /** How long an authz answer is reused (authz's change events clear it sooner when the gateway follows them). */
  permissionCacheMs: Cfg.intBetween("PERMISSION_CACHE_TTL_MS", 0, 1_000).pipe(Config.withDefault(500)),
  /** How long a "session not revoked" answer is reused at the edge (the services behind check on every request). */
  revocationCheckMs: Cfg.intBetween("REVOCATION_CHECK_MS", 0, 1_000).pipe(Config.withDefault(250)),
  /** Base URL of each upstream (`<NAME>_URL`), default the manifest's HTTP port on this host. */
  upstreamUrls: Config.all(
    Object.fromEntries(
      upstreams.map((m) => [
        m.name,
        Config.URL(httpUrlKey(m.name)).pipe(Config.withDefault(new URL(`http://127.0.0.1:${m.ports.http}`))),
      ]),
    ),
  ),
})

/**
 * The gateway's configuration, read and validated once at start (every problem reported at once). Revoked sessions
 * must reach the edge: that needs Redis (the shared list) or a database (the gateway's inbox for auth's events).
 */
export const load = (upstreams: ReadonlyArray<ModuleManifest> = upstreamManifests()) =>
  Effect.flatMap(Cfg.load(spec(upstreams)), (config) =>
    Option.isNone(config.redisUrl) && Option.isNone(config.databaseUrl)
      ? Effect.fail(
          new Cfg.ConfigInvalid({
            problems: ["REDIS_URL or DATABASE_URL: one of them is needed to learn of revoked sessions"],
          }),
        )
      : Effect.succeed(config),
  )

/** The gateway's configuration for the functions of the registry. */
export const loadConfig = load()

/** The gateway's validated configuration. */
export type GatewayConfig = Effect.Success<typeof loadConfig>
