import { Effect, Layer, Option, Schema } from "effect"
import * as Authentication from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import { Cache } from "../../shared/Cache.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { revocationsFor } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import { Administrators } from "./Administrators.ts"
import { AdministratorsRepo } from "./AdministratorsRepo.ts"
import { AuthzApi } from "./Api.ts"
import { AssignmentsRepo } from "./AssignmentsRepo.ts"
import { Authorizer } from "./Authorizer.ts"
import { BootstrapAdminLive } from "./BootstrapAdmin.ts"
import type { AuthzConfig } from "./Config.ts"
import { loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"
import { PermissionRegistry } from "./PermissionRegistry.ts"
import { UserId } from "./Role.ts"
import { Roles } from "./Roles.ts"
import { RolesRepo } from "./RolesRepo.ts"

const decodeUserId = Schema.decodeUnknownOption(UserId)

/**
 * How long a user's effective grants are cached: with Redis every instance shares the entries and a change reaches
 * all of them at once, so they may live 60 s; in memory another process only notices a change when its entry
 * expires, so entries live 0.5 s (a grant or a revocation still holds everywhere within 1 s).
 */
export const cacheTtlSeconds = (config: AuthzConfig) =>
  Option.getOrElse(config.cacheTtlSeconds, () => (Option.isSome(config.redisUrl) ? 60 : 0.5))

/**
 * The cache of effective permissions: Redis when `REDIS_URL` is set, else this process's memory. Keys are prefixed
 * `authz.<schema>`: deployments (or tests) on other schemas sharing one Redis never see each other's entries.
 */
export const CacheLive = (config: AuthzConfig) => Cache.layer({ prefix: `${manifest.name}.${config.dbSchema}` })

/**
 * Authz's domain services (roles, assignments, checks, the permission registry) over the kernel's Db; the registry is
 * every function's manifest unless given (tests).
 */
export const DomainLive = (config: AuthzConfig, registry: Layer.Layer<PermissionRegistry> = PermissionRegistry.layer) =>
  Roles.layer.pipe(
    Layer.provideMerge(Administrators.layer),
    Layer.provideMerge(Authorizer.layer({ ttlSeconds: cacheTtlSeconds(config) })),
    Layer.provideMerge(registry),
    Layer.provide([
      RolesRepo.layer,
      AssignmentsRepo.layer,
      AdministratorsRepo.layer,
      Outbox.layer(manifest),
      CacheLive(config),
    ]),
  )

/** Bearer authentication of the signed-in route: tokens checked against auth's JWKS and the session revocations. */
const AuthenticationLive = (config: AuthzConfig) =>
  Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: config.authJwksUrl } })

/**
 * How authz enforces its own routes (zero trust): bearer tokens as above, and permissions answered by its own
 * `Authorizer` (no call to itself). Needs `SessionRevocations` and the domain.
 */
export const AccessLive = (config: AuthzConfig) =>
  Layer.merge(
    AuthenticationLive(config),
    Layer.unwrap(
      Effect.map(Effect.service(Authorizer), (authorizer) =>
        Permissions.local((subject, permission) =>
          Option.match(decodeUserId(subject), {
            // A subject that is no user id here cannot hold roles.
            onNone: () => Effect.succeed(false),
            onSome: (userId) => Effect.map(authorizer.check(userId, permission), (decision) => decision.allowed),
          }),
        ),
      ),
    ),
  )

/** Authz's identity on internal calls; it serves the functions that depend on it (the gateway, the services). */
export const Identity = (config: AuthzConfig) => Kernel.identity(manifest, manifests, config)

/** The kernel infrastructure authz runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: AuthzConfig) => Kernel.foundation(manifest, config)

/**
 * The event side of the container: the relay of authz's outbox (with Kafka) and the bus that the bootstrap consumer
 * and the session revocations follow. Lambda leaves it out: background work would freeze between invocations.
 */
export const Bus = (config: AuthzConfig) => Kernel.events(manifest, config)

/** The consumer of identity's account events that makes `BOOTSTRAP_ADMIN_EMAIL` the first administrator. */
export const Background = (config: AuthzConfig) => BootstrapAdminLive({ email: config.bootstrapAdminEmail })

/**
 * Authz as its entries and tests run it: the HTTP contract (every route enforced as declared), gRPC (permission checks
 * and the last-administrator guard for the other functions), and in a container the bootstrap consumer.
 */
export const app = FunctionApp.define({
  manifest,
  api: AuthzApi,
  config: loadConfig,
  http: HttpLive,
  grpc: () => import("./Grpc.ts"),
  background: Background,
  services: (config, runtime) =>
    AccessLive(config).pipe(
      Layer.provideMerge(revocationsFor(manifest.name, runtime, Bus(config))),
      Layer.provideMerge(DomainLive(config)),
      Layer.provideMerge(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
})
