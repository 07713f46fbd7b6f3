import { Layer } from "effect"
import * as Authentication from "../../shared/Authentication.ts"
import { Cache } from "../../shared/Cache.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { MailSender } from "../../shared/MailSender.ts"
import { Notifier } from "../../shared/Notifier.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { AppBaseUrl } from "./AppBaseUrl.ts"
import type { IdentityConfig } from "./Config.ts"
import { EmailTokens } from "./EmailTokens.ts"
import { manifest } from "./module.ts"
import { Passwords } from "./Passwords.ts"
import { Users } from "./Users.ts"
import { UsersRepo } from "./UsersRepo.ts"

/** Identity's domain services over the kernel's Db (argon2id at OWASP's minimum cost unless configured). */
export const DomainLive = Users.layer.pipe(
  Layer.provide([
    UsersRepo.layer,
    EmailTokens.layer,
    Notifier.layer,
    Outbox.layer(manifest.name),
    Passwords.layer(),
    Cache.layer({ prefix: manifest.name }),
  ]),
)

/**
 * Bearer authentication of the signed-in routes: tokens checked against auth's JWKS and the session revocations
 * (`SessionRevocations`: the shared list in Lambda and tests, `following` in containers).
 */
export const AuthenticationLive = (config: IdentityConfig) =>
  Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: config.authJwksUrl } })

/**
 * The kernel infrastructure identity runs on (logging, telemetry, health, Postgres + migrations, events, mail),
 * from config. Lambda leaves the background workers out (`background: false`: the event relay and the mail sender
 * would freeze between invocations); their rows wait for the container instances.
 */
export const Infrastructure = (config: IdentityConfig, options: { readonly background?: boolean } = {}) => {
  const workers =
    options.background === false
      ? Layer.empty
      : Layer.mergeAll(Kernel.events({ manifest, kafkaBrokers: config.kafkaBrokers }), MailSender.fromConfig(config))
  const appBaseUrl = Layer.succeed(AppBaseUrl, config.appBaseUrl.toString().replace(/\/$/, ""))
  return Layer.mergeAll(workers, appBaseUrl).pipe(Layer.provideMerge(Kernel.foundation(manifest, config)))
}
