import { Effect } from "effect"
import { Permissions } from "../../../shared/access/Permissions.ts"
import { type AppUnderTest, startApp } from "../../../shared/testing/appHarness.ts"
import { freshSchema } from "../../../shared/testing/harness.ts"
import { tokenOptions } from "../../auth/testing/authHarness.ts"
import { startIssuer, type TokenIssuer } from "../../authz/testing/authzHarness.ts"
import { app } from "../App.ts"
import type { AnalyticsConfig } from "../Config.ts"

/** Analytics as main.ts runs it (HTTP, its jobs, the consumer and the rollup worker) on the real Postgres. */
export interface AnalyticsUnderTest extends AppUnderTest<AnalyticsConfig> {
  /** The `Authorization` header of a user: a real access token from the test issuer. */
  readonly as: (userId: string) => Promise<Record<string, string>>
  readonly schema: string
}

/** A fresh analytics schema name. */
export const freshAnalyticsSchema = () => freshSchema("analytics").schema

/**
 * Starts analytics' `app` from the test environment and `env`: tokens from a test issuer, permissions stood in for
 * (the users in `readers` hold analytics.report.read), the embedded bus unless `env` says otherwise.
 */
export const startAnalytics = async (options: {
  readonly readers: ReadonlyArray<string>
  readonly schema?: string
  readonly issuer?: TokenIssuer
  readonly env?: Record<string, string | undefined>
}): Promise<AnalyticsUnderTest> => {
  const issuer = options.issuer ?? (await startIssuer())
  const schema = options.schema ?? freshAnalyticsSchema()
  const running = await startApp(app, {
    env: {
      DB_SCHEMA: schema,
      JWT_ISSUER: tokenOptions.issuer,
      JWT_AUDIENCE: tokenOptions.audience,
      AUTH_JWKS_URL: issuer.jwksUrl.href,
      KAFKA_BROKERS: undefined,
      ANALYTICS_ROLLUP_INTERVAL_MS: "100",
      ...options.env,
    },
    standIns: () =>
      Permissions.local((userId, permission) =>
        Effect.succeed(permission === "analytics.report.read" && options.readers.includes(userId)),
      ),
  })
  return {
    ...running,
    schema,
    as: async (userId) => ({ authorization: `Bearer ${await issuer.issue(userId)}` }),
    close: async () => {
      await running.close()
      if (options.issuer === undefined) await issuer.close()
    },
  }
}
