import { Layer } from "effect"
import * as Authentication from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as DevMailbox from "../../shared/DevMailbox.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import { Idempotency } from "../../shared/Idempotency.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { MailSender } from "../../shared/MailSender.ts"
import { Notifier } from "../../shared/Notifier.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { revocationsFor } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { manifests } from "../registry.ts"
import { BillingApi } from "./Api.ts"
import { type BillingConfig, BillingSettings, loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { manifest } from "./module.ts"
import { PaymentMethods } from "./PaymentMethods.ts"
import { Plans } from "./Plans.ts"
import * as Providers from "./Providers.ts"
import { Reads } from "./Reads.ts"
import { ReceiptRecipients } from "./Receipts.ts"
import * as Renewals from "./Renewals.ts"

/**
 * Billing's domain: plans (events through the outbox), the reads of subscriptions and invoices, customers' payment
 * methods and the engine (Lifecycle.ts) charging through the provider BILLING_PAYMENT_PROVIDER chooses, receipts
 * queued through the Notifier.
 */
export const DomainLive = (config: BillingConfig) =>
  Layer.mergeAll(
    Plans.layer,
    Reads.layer,
    PaymentMethods.layer,
    Lifecycle.layer({ retryScheduleDays: config.retryScheduleDays }),
    Layer.succeed(BillingSettings, BillingSettings.of({ testClocks: config.testClocks })),
  ).pipe(
    Layer.provide(
      Layer.mergeAll(
        Outbox.layer(manifest),
        Providers.layer(config),
        Notifier.layer,
        ReceiptRecipients.identity({ address: config.identityGrpcUrl }),
      ),
    ),
  )

/**
 * How billing enforces its own routes (zero trust): bearer tokens against auth's JWKS and the session revocations, and
 * permissions through authz's `Authorize` (answers reused ≤ 500 ms) for the routes and the ownership rules. Needs
 * `SessionRevocations` and `ServiceIdentity`.
 */
export const AccessLive = (config: BillingConfig) =>
  Layer.merge(
    Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: config.authJwksUrl } }),
    Permissions.layer({ address: config.authzGrpcUrl, ttlMs: 500 }),
  )

/** Billing's identity on internal calls (its service tokens to authz); no function depends on it. */
export const Identity = (config: BillingConfig) => Kernel.identity(manifest, manifests, config)

/** The kernel infrastructure billing runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: BillingConfig) => Kernel.foundation(manifest, config)

/**
 * The event side of the container: the relay of billing's outbox (with Kafka) and the bus the session revocations
 * follow. Lambda leaves it out: its outbox rows wait for the containers.
 */
export const Bus = (config: BillingConfig) => Kernel.events(manifest, config)

/**
 * The container's background work: the queued receipts go out over SMTP (or to the dev mailbox), and authz's changes
 * clear the permission cache.
 */
export const Background = (config: BillingConfig) =>
  Layer.merge(MailSender.fromConfig(config), Permissions.following(manifest.name, permissionChanges))

/** Billing as its entries and tests run it: its HTTP contract, every route enforced as declared. */
export const app = FunctionApp.define({
  manifest,
  api: BillingApi,
  config: loadConfig,
  http: HttpLive,
  background: Background,
  // Renewals and payment retries on wall time, every minute (Renewals.ts).
  jobs: Renewals.jobs,
  unguarded: DevMailbox.routeFor,
  services: (config, runtime) =>
    DomainLive(config).pipe(
      Layer.provideMerge(AccessLive(config)),
      Layer.provideMerge(revocationsFor(manifest.name, runtime, Bus(config))),
      Layer.provideMerge(Idempotency.layer),
      Layer.provideMerge(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
})
