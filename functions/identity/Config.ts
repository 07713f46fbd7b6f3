import { Config, type Effect } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"

/** Identity's configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http, grpcPort: manifest.ports.grpc }),
  ...Cfg.database(manifest.name),
  /** Base of the links in verification and reset mails. */
  appBaseUrl: Config.URL("APP_BASE_URL").pipe(Config.withDefault(new URL(Cfg.localOrigin("gateway", manifests)))),
  /** SMTP server for mail; unset = the dev mailbox (served at GET /_dev/mail outside production). */
  smtpUrl: Config.option(Cfg.secret("SMTP_URL")),
  mailFrom: Config.option(Config.String("MAIL_FROM")),
  ...verifierConfig(manifests),
  /** authz's gRPC address (`host:port`): the permission checks of the admin routes. */
  authzGrpcUrl: Cfg.grpcAddress("authz", manifests),
  /** How long a verification or reset token is kept after it expired (used ones expire too) before retention deletes it. */
  emailTokenRetentionDays: Cfg.numberBetween("EMAIL_TOKEN_RETENTION_DAYS", 1, 3650).pipe(Config.withDefault(7)),
})

/** Identity's validated configuration. */
export type IdentityConfig = Effect.Success<typeof loadConfig>
