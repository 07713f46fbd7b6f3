import { Layer } from "effect"
import * as Authentication from "../../shared/access/Authentication.ts"
import { AuthzClient, Permissions } from "../../shared/access/Permissions.ts"
import * as DevMailbox from "../../shared/DevMailbox.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { MailSender } from "../../shared/MailSender.ts"
import { Notifier } from "../../shared/Notifier.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { RateLimit } from "../../shared/RateLimit.ts"
import { revocationsFor } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { manifests } from "../registry.ts"
import { AdminGuard } from "./AdminGuard.ts"
import { IdentityApi } from "./Api.ts"
import { AppBaseUrl } from "./AppBaseUrl.ts"
import type { IdentityConfig } from "./Config.ts"
import { loadConfig } from "./Config.ts"
import { EmailTokens, retentionRules } from "./EmailTokens.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"
import { Passwords } from "./Passwords.ts"
import { Users } from "./Users.ts"
import { UsersRepo } from "./UsersRepo.ts"

/**
 * Identity's domain services over the kernel's Db (argon2id at OWASP's minimum cost unless configured); they need an
 * `AdminGuard` (`AdminGuardLive` or, without authz, `AdminGuard.layerTest`).
 */
export const DomainLive = Users.layer.pipe(
  Layer.provide([
    UsersRepo.layer,
    EmailTokens.layer,
    Notifier.layer,
    Outbox.layer(manifest),
    Passwords.layer(),
    RateLimit.layer,
  ]),
)

/**
 * Identity's one gRPC channel to authz (`AUTHZ_GRPC_URL`), opened on first use: the last-administrator guard and the
 * admin routes' permission checks share it. Needs `ServiceIdentity`.
 */
const AuthzLive = (config: IdentityConfig) => AuthzClient.layer({ address: config.authzGrpcUrl })

/** authz's last-administrator guard over gRPC, on identity's channel to authz (`AuthzClient`). */
export const AdminGuardLive = AdminGuard.layer

/**
 * Bearer authentication of the signed-in routes: tokens checked against auth's JWKS and the session revocations
 * (`SessionRevocations`: the shared list in Lambda and tests, `following` in containers).
 */
const AuthenticationLive = (config: IdentityConfig) =>
  Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: config.authJwksUrl } })

/**
 * How identity enforces its own routes (zero trust): bearer tokens as above, and the admin routes' permissions through
 * authz's `Authorize` (answers reused ≤ 500 ms) on identity's channel to authz. Needs `SessionRevocations` and
 * `AuthzClient`.
 */
export const AccessLive = (config: IdentityConfig) =>
  Layer.merge(AuthenticationLive(config), Permissions.layerOn({ ttlMs: 500 }))

/** Identity's identity on internal calls; it serves the functions that depend on it (auth, the gateway). */
export const Identity = (config: IdentityConfig) => Kernel.identity(manifest, manifests, config)

/** The kernel infrastructure identity runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: IdentityConfig) =>
  Layer.succeed(AppBaseUrl, config.appBaseUrl.toString().replace(/\/$/, "")).pipe(
    Layer.provideMerge(Kernel.foundation(manifest, config)),
  )

/**
 * The event side of the container: the relay of identity's outbox (with Kafka) and the bus the session revocations
 * follow. Lambda leaves it out: background work would freeze between invocations; its rows wait for the containers.
 */
export const Bus = (config: IdentityConfig) => Kernel.events(manifest, config)

/**
 * The container's background work: the notifier's queued mails go out over SMTP (or to the dev mailbox), and authz's
 * changes clear the permission cache.
 */
export const Background = (config: IdentityConfig) =>
  Layer.merge(MailSender.fromConfig(config), Permissions.following(manifest.name, permissionChanges))

/**
 * Identity as its entries and tests run it: the HTTP contract (every route enforced as declared), gRPC (accounts for
 * auth), and in a container the mail sender and the permission-cache consumer.
 */
export const app = FunctionApp.define({
  manifest,
  api: IdentityApi,
  config: loadConfig,
  http: HttpLive,
  grpc: () => import("./Grpc.ts"),
  background: Background,
  retention: (config) => retentionRules(config.emailTokenRetentionDays),
  unguarded: DevMailbox.routeFor,
  services: (config, runtime) =>
    AccessLive(config).pipe(
      Layer.provideMerge(revocationsFor(manifest.name, runtime, Bus(config))),
      Layer.provideMerge(DomainLive),
      Layer.provideMerge(AdminGuardLive),
      // One channel to authz for the permission checks and the guard above.
      Layer.provideMerge(AuthzLive(config)),
      Layer.provideMerge(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
})
