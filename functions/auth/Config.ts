import { Config, type Effect, Schema } from "effect"
import { REVOCATION_REPLAY_SECONDS } from "../../shared/access/SessionRevocations.ts"
import * as Cfg from "../../shared/Config.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"
import { REVOCATION_MARGIN_SECONDS } from "./Sessions.ts"

/** Auth's configuration keys for signing keys and tokens. */
export const keysConfig = {
  keyEncryptionKey: Cfg.secret("KEY_ENCRYPTION_KEY"),
  signingKeyRotationDays: Cfg.intBetween("SIGNING_KEY_ROTATION_DAYS", 1, 365).pipe(Config.withDefault(30)),
  /** Extra time a retired key stays published beyond the access-token lifetime (clock skew, JWKS caches). */
  signingKeyGraceSeconds: Cfg.intBetween("SIGNING_KEY_GRACE_SECONDS", 0, 86_400).pipe(Config.withDefault(600)),
  ...Cfg.tokenClaims(Cfg.localOrigin(manifest.name, manifests)),
  /**
   * At most what a restarted verifier replays of the revocations (less their margin): a token never outlives the
   * memory of its session's revocation.
   */
  accessTokenTtlSeconds: Cfg.intBetween(
    "ACCESS_TOKEN_TTL_SECONDS",
    60,
    REVOCATION_REPLAY_SECONDS - REVOCATION_MARGIN_SECONDS,
  ).pipe(Config.withDefault(900)),
}

/** Sessions (refresh-token families) and brute-force throttling. */
export const sessionsConfig = {
  refreshTokenTtlDays: Cfg.intBetween("REFRESH_TOKEN_TTL_DAYS", 1, 365).pipe(Config.withDefault(7)),
  /** How long a just-superseded refresh token may still be used (parallel refreshes of one client). */
  refreshReuseGraceSeconds: Cfg.intBetween("REFRESH_REUSE_GRACE_SECONDS", 0, 60).pipe(Config.withDefault(10)),
  /** Failed logins per account before the growing delay starts. */
  loginFreeAttempts: Cfg.intBetween("LOGIN_FREE_ATTEMPTS", 1, 20).pipe(Config.withDefault(5)),
  /** Longest delay a series of failed logins can cause: 15 minutes at most, 60 s at least (≤ 100 failures/hour). */
  loginMaxDelaySeconds: Cfg.intBetween("LOGIN_MAX_DELAY_SECONDS", 60, 900).pipe(Config.withDefault(900)),
  /** Login and register attempts per client address per minute. */
  loginIpLimitPerMinute: Cfg.intBetween("LOGIN_IP_LIMIT_PER_MINUTE", 1, 1_000_000_000).pipe(Config.withDefault(60)),
  /** How long an ended session (expired or revoked) and an expired refresh token are kept before retention deletes them. */
  sessionRetentionDays: Cfg.numberBetween("SESSION_RETENTION_DAYS", 1, 3650).pipe(Config.withDefault(30)),
}

/** One external OpenID Provider users may sign in with (authorization code + PKCE). */
export const OidcProvider = Schema.Struct({
  /** The provider's name in the routes: /api/v1/auth/oidc/{name}/authorize. */
  name: Schema.String.check(Schema.isPattern(/^[a-z0-9-]{1,32}$/, { message: "must be 1-32 of a-z, 0-9, -" })),
  issuer: Schema.String.check(Schema.isPattern(/^https?:\/\//, { message: "must be an http(s) URL" })),
  clientId: Schema.String.check(Schema.isMinLength(1)),
  clientSecret: Schema.optional(Schema.String),
  /** Where the provider sends the browser back: this platform's .../oidc/{name}/callback as the public sees it. */
  redirectUri: Schema.String.check(Schema.isPattern(/^https?:\/\//, { message: "must be an http(s) URL" })),
  scopes: Schema.optional(Schema.Array(Schema.String)),
})

/** One configured OpenID Provider. */
export type OidcProvider = typeof OidcProvider.Type

/** External OpenID Providers (`OIDC_PROVIDERS`, a JSON array; a secret: it holds client secrets). */
export const oidcConfig = {
  oidcProviders: Config.schema(Schema.fromJsonString(Schema.Array(OidcProvider)), "OIDC_PROVIDERS").pipe(
    Config.withDefault([] as ReadonlyArray<OidcProvider>),
  ),
  /** Allows plain-http issuers (a provider on localhost in development and tests); never in production. */
  oidcAllowHttp: Config.Boolean("OIDC_ALLOW_HTTP").pipe(Config.withDefault(false)),
}

/** Auth's configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http, grpcPort: manifest.ports.grpc }),
  ...Cfg.database(manifest.name),
  /** identity's gRPC address (`host:port`). */
  identityGrpcUrl: Cfg.grpcAddress("identity", manifests),
  ...keysConfig,
  ...sessionsConfig,
  ...oidcConfig,
})

/** Auth's validated configuration. */
export type AuthConfig = Effect.Success<typeof loadConfig>
