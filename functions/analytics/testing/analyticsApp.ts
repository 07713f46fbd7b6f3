import { freshSchema } from "../../../shared/testing/harness.ts"
import type { TokenIssuer } from "../../authz/testing/authzHarness.ts"
import { type SignedInUnderTest, startSignedIn } from "../../authz/testing/signedInApp.ts"
import { app } from "../App.ts"
import type { AnalyticsConfig } from "../Config.ts"

/** Analytics as main.ts runs it (HTTP, its jobs, the consumer and the rollup worker) on the real Postgres. */
export type AnalyticsUnderTest = SignedInUnderTest<AnalyticsConfig>

/** A fresh analytics schema name. */
export const freshAnalyticsSchema = () => freshSchema("analytics").schema

/**
 * Starts analytics' `app` from the test environment and `env`: tokens from a test issuer, permissions stood in for
 * (the users in `readers` hold analytics.report.read), the embedded bus unless `env` says otherwise.
 */
export const startAnalytics = (options: {
  readonly readers: ReadonlyArray<string>
  readonly schema?: string
  readonly issuer?: TokenIssuer
  readonly env?: Record<string, string | undefined>
}): Promise<AnalyticsUnderTest> =>
  startSignedIn(app, {
    schema: options.schema ?? freshAnalyticsSchema(),
    issuer: options.issuer,
    grants: Object.fromEntries(options.readers.map((reader) => [reader, ["analytics.report.read"]])),
    env: { ANALYTICS_ROLLUP_INTERVAL_MS: "100", ...options.env },
  })
