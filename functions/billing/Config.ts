import { Config, Context, type Effect, Option, Schema } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import { manifest } from "./module.ts"
import * as StripeProvider from "./StripeProvider.ts"

/** The most retries a dunning schedule may have, and the latest day after the first failure one may come. */
export const MAX_RETRIES = 10
export const MAX_RETRY_DAY = 365

const DAY = /^(?:0|[1-9]\d{0,2})(?:\.\d{1,3})?$/

/**
 * Reads a dunning schedule: days after the first failed payment at which it is tried again (`1,3,5`), each a positive
 * number of days (fractions allowed: `0.5`), strictly increasing, at most `MAX_RETRY_DAY`, 1–`MAX_RETRIES` of them.
 * A problem with it is a message (the configuration's problem), a good one the days in order.
 */
export const parseRetrySchedule = (text: string): ReadonlyArray<number> | string => {
  const parts = text.split(",").map((part) => part.trim())
  if (parts.length > MAX_RETRIES) return `at most ${MAX_RETRIES} retries`
  const days: Array<number> = []
  for (const part of parts) {
    if (!DAY.test(part)) return `"${part}" is not a number of days (1, 3, 0.5)`
    const day = Number(part)
    if (day <= 0 || day > MAX_RETRY_DAY) return `${part}: a retry comes after 0 and by day ${MAX_RETRY_DAY}`
    if (days.length > 0 && day <= days[days.length - 1]!) return "the days must increase (1,3,5)"
    days.push(day)
  }
  return days
}

const retrySchedule = Config.schema(
  Schema.String.check(
    Schema.makeFilter((text: string) => {
      const parsed = parseRetrySchedule(text)
      return typeof parsed === "string" ? `Expected retry days like 1,3,5: ${parsed}` : true
    }),
  ),
  "BILLING_RETRY_SCHEDULE_DAYS",
).pipe(
  Config.map((text) => parseRetrySchedule(text) as ReadonlyArray<number>),
  Config.withDefault([1, 3, 5] as ReadonlyArray<number>),
)

/** BILLING_TEST_CLOCKS: explicit when set; otherwise on outside production and off in it. */
export const testClocks = Config.all([
  Config.Literals(["development", "test", "production"], "NODE_ENV").pipe(Config.withDefault("development")),
  Config.option(Config.Boolean("BILLING_TEST_CLOCKS")),
]).pipe(Config.map(([env, set]) => Option.getOrElse(set, () => env !== "production")))

/** Billing's configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http }),
  ...Cfg.database(manifest.name),
  ...verifierConfig(manifests),
  /** authz's gRPC address (`host:port`): the permission checks of its routes and ownership rules. */
  authzGrpcUrl: Cfg.grpcAddress("authz", manifests),
  /** identity's gRPC address (`host:port`): the addresses receipts go to. */
  identityGrpcUrl: Cfg.grpcAddress("identity", manifests),
  /** SMTP server for receipts; unset = the dev mailbox (refused in production). */
  smtpUrl: Config.option(Cfg.secret("SMTP_URL")),
  mailFrom: Config.option(Config.String("MAIL_FROM")),
  /** BILLING_PAYMENT_PROVIDER (test|stripe), STRIPE_SECRET_KEY, STRIPE_API_BASE. */
  ...StripeProvider.config,
  /** Whether the test clock routes are served (404 when not). */
  testClocks,
  /** Days after an invoice's first failed payment at which it is retried; after the last failure it is given up. */
  retryScheduleDays: retrySchedule,
})

/** Billing's validated configuration. */
export type BillingConfig = Effect.Success<typeof loadConfig>

/** What billing's handlers need of its configuration. */
export class BillingSettings extends Context.Service<
  BillingSettings,
  {
    /** Whether test clocks are served (BILLING_TEST_CLOCKS): without them a subscription cannot name one. */
    readonly testClocks: boolean
  }
>()("billing/BillingSettings") {}
