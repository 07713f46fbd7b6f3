import { Config, type Effect, Schema } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"

/** Authz's configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http, grpcPort: manifest.ports.grpc }),
  ...Cfg.database(manifest.name),
  ...verifierConfig(manifests),
  /** The account with this email gets the built-in admin role when it is created or verified; unset = nobody. */
  bootstrapAdminEmail: Config.option(
    Config.schema(
      Schema.String.check(
        Schema.isMaxLength(254, { message: "must be at most 254 characters" }),
        Schema.isPattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: "must be an email address" }),
      ),
      "BOOTSTRAP_ADMIN_EMAIL",
    ),
  ),
  /** Redis for the cached permissions (shared by every authz instance); unset = each process's memory. */
  redisUrl: Config.option(Cfg.secret("REDIS_URL")),
  /** How long a user's effective grants stay cached; default 60 s with Redis, 0.5 s in memory. */
  cacheTtlSeconds: Config.option(
    Config.schema(
      Schema.NumberFromString.check(
        Schema.isGreaterThan(0, { message: "must be positive" }),
        Schema.isLessThanOrEqualTo(3600, { message: "must be at most 3600" }),
      ),
      "AUTHZ_CACHE_TTL_SECONDS",
    ),
  ),
})

/** Authz's validated configuration. */
export type AuthzConfig = Effect.Success<typeof loadConfig>
