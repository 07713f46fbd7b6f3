import { Effect, Layer } from "effect"
import * as Authentication from "../../shared/access/Authentication.ts"
import * as SessionRevocations from "../../shared/access/SessionRevocations.ts"
import { Cache } from "../../shared/Cache.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import type { Health } from "../../shared/Health.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { manifests } from "../registry.ts"
import { AuthApi } from "./Api.ts"
import type { AuthConfig } from "./Config.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { IdentityClient } from "./IdentityClient.ts"
import { IdentityEventsLive } from "./IdentityEvents.ts"
import { KeyCipher } from "./KeyCipher.ts"
import { LoginThrottle } from "./LoginThrottle.ts"
import { manifest } from "./module.ts"
import { OidcLinksRepo } from "./OidcLinksRepo.ts"
import { OidcLogin } from "./OidcLogin.ts"
import { Sessions } from "./Sessions.ts"
import { retentionRules, SessionsRepo } from "./SessionsRepo.ts"
import { SignIn } from "./SignIn.ts"
import { SigningKeys } from "./SigningKeys.ts"
import { SigningKeysRepo } from "./SigningKeysRepo.ts"
import { Tokens } from "./Tokens.ts"
import { sessionRevoked } from "./TokenVerification.ts"

/** Signing keys and access tokens (keys rotate on schedule; retired keys stay published for a token's lifetime). */
export const TokensLive = (config: AuthConfig) =>
  Tokens.layer({
    issuer: config.jwtIssuer,
    audience: config.jwtAudience,
    ttlSeconds: config.accessTokenTtlSeconds,
  }).pipe(
    Layer.provideMerge(
      SigningKeys.layer({
        rotationInterval: `${config.signingKeyRotationDays} days`,
        retention: `${config.accessTokenTtlSeconds + config.signingKeyGraceSeconds} seconds`,
      }),
    ),
    Layer.provide([SigningKeysRepo.layer, KeyCipher.layer(config.keyEncryptionKey)]),
  )

/**
 * Auth's domain services: sign-in, sessions, throttling and tokens, over identity's gRPC and the kernel. Revocations:
 * `SessionRevocations.layer` (fails closed when Redis cannot answer) unless the caller follows auth's events (the
 * container: `layerDegrading` with `Events`). Sign-in throttling and OIDC attempts count in memory while Redis is away.
 */
export const DomainLive = (
  config: AuthConfig,
  revocations: Layer.Layer<SessionRevocations.SessionRevocations, unknown, Health> = SessionRevocations
    .SessionRevocations.layer,
) =>
  OidcLogin.layer({ providers: config.oidcProviders, allowHttp: config.oidcAllowHttp }).pipe(
    Layer.provide([OidcLinksRepo.layer, Cache.layer({ prefix: "auth-oidc", fallback: "memory" })]),
    Layer.provideMerge(SignIn.layer),
    Layer.provideMerge(
      Sessions.layer({
        refreshTtlSeconds: config.refreshTokenTtlDays * 86_400,
        reuseGraceSeconds: config.refreshReuseGraceSeconds,
        accessTtlSeconds: config.accessTokenTtlSeconds,
      }),
    ),
    Layer.provideMerge(TokensLive(config)),
    Layer.provide([
      IdentityClient.layer({ address: config.identityGrpcUrl }),
      LoginThrottle.layer({
        freeAttempts: config.loginFreeAttempts,
        maxDelaySeconds: config.loginMaxDelaySeconds,
        ipLimitPerMinute: config.loginIpLimitPerMinute,
      }),
      Outbox.layer(manifest),
      SessionsRepo.layer,
    ]),
    Layer.provideMerge(revocations),
  )

/** How auth enforces its own signed-in routes: bearer tokens against its own key ring (no JWKS round trip). */
export const AccessLive = (config: AuthConfig) =>
  Layer.unwrap(
    Effect.map(Effect.service(SigningKeys), (keys) =>
      Authentication.layerWithKeys(keys.verificationKey, { issuer: config.jwtIssuer, audience: config.jwtAudience }),
    ),
  )

/** Auth's identity on internal calls (to identity; it serves the gateway). */
export const Identity = (config: AuthConfig) => Kernel.identity(manifest, manifests, config)

/** The kernel infrastructure auth runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: AuthConfig) => Kernel.foundation(manifest, config)

/**
 * The event side of the container (the relay of auth's outbox, the consumer of identity's events, and every instance
 * following auth's own revocations into memory, so its signed-in routes ride out a Redis outage). Lambda leaves it
 * out: background work would freeze between invocations; the rows wait for the containers.
 */
export const Background = (config: AuthConfig) =>
  Layer.mergeAll(
    IdentityEventsLive,
    SessionRevocations.following({ service: manifest.name, feed: sessionRevoked }),
  ).pipe(Layer.provide(Bus(config)))

/** The bus auth's consumers follow and its outbox is relayed to (Kafka with `KAFKA_BROKERS`, else Postgres). */
export const Bus = (config: AuthConfig) => Kernel.events(manifest, config)

/**
 * Auth as its entries and tests run it: the HTTP contract (every route enforced as declared, signed-in ones against
 * its own key ring), gRPC (sessions for identity), and in a container its consumers. Its own revocations degrade to
 * the ones it follows in memory while Redis is away in a container; a Lambda invocation fails closed.
 */
export const app = FunctionApp.define({
  manifest,
  api: AuthApi,
  config: loadConfig,
  http: HttpLive,
  grpc: () => import("./Grpc.ts"),
  background: Background,
  retention: (config) => retentionRules(config.sessionRetentionDays),
  services: (config, runtime) =>
    AccessLive(config).pipe(
      Layer.provideMerge(
        DomainLive(
          config,
          runtime === "container"
            ? SessionRevocations.SessionRevocations.layerDegrading
            : SessionRevocations.SessionRevocations.layer,
        ),
      ),
      Layer.provideMerge(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
})
