import { Effect } from "effect"
import { Permissions } from "../../../shared/access/Permissions.ts"
import { type AppUnderTest, startApp } from "../../../shared/testing/appHarness.ts"
import { freshSchema } from "../../../shared/testing/harness.ts"
import { tokenOptions } from "../../auth/testing/authHarness.ts"
import { startIssuer, type TokenIssuer } from "../../authz/testing/authzHarness.ts"
import { app } from "../App.ts"
import type { BillingConfig } from "../Config.ts"

/** Who holds which permission: authz's answers, stood in for (authz is tested in authz and through the platform). */
export type Grants = Readonly<Record<string, ReadonlyArray<string>>>

/** Billing as main.ts runs it (its `app`) on the real Postgres. */
export interface BillingUnderTest extends AppUnderTest<BillingConfig> {
  /** The `Authorization` header of a user: a real access token from the test issuer. */
  readonly as: (userId: string) => Promise<Record<string, string>>
}

/** Environment of a billing under test: its schema, the test issuer's keys, the embedded bus (no Kafka). */
export const billingEnv = (schema: string, jwksUrl: string): Record<string, string | undefined> => ({
  DB_SCHEMA: schema,
  DB_POOL_MAX: "8",
  JWT_ISSUER: tokenOptions.issuer,
  JWT_AUDIENCE: tokenOptions.audience,
  AUTH_JWKS_URL: jwksUrl,
  KAFKA_BROKERS: undefined,
  BILLING_PAYMENT_PROVIDER: "test",
})

/** The stand-in for authz: a user holds exactly the permissions `grants` lists for them. */
export const grantsStandIn = (grants: Grants) =>
  Permissions.local((userId, permission) => Effect.succeed(grants[userId]?.includes(permission) ?? false))

/** A fresh billing schema name. */
export const freshBillingSchema = () => freshSchema("billing").schema

/**
 * Starts billing's `app` with its configuration read from the test environment and `env`: tokens from a test issuer
 * (`issuer`, else one of its own) and permissions from `grants`.
 */
export const startBilling = async (options: {
  readonly grants: Grants
  readonly schema?: string
  readonly issuer?: TokenIssuer
  readonly env?: Record<string, string | undefined>
}): Promise<BillingUnderTest> => {
  const issuer = options.issuer ?? (await startIssuer())
  const running = await startApp(app, {
    env: { ...billingEnv(options.schema ?? freshBillingSchema(), issuer.jwksUrl.href), ...options.env },
    standIns: () => grantsStandIn(options.grants),
  })
  return {
    ...running,
    as: async (userId) => ({ authorization: `Bearer ${await issuer.issue(userId)}` }),
    close: async () => {
      await running.close()
      if (options.issuer === undefined) await issuer.close()
    },
  }
}

/**
 * Calls to a billing under test (`billing()`, read at each call) as a user whose headers `headers` holds, with a JSON
 * body, a raw one or extra headers: the answer's status, headers, content type and body (parsed when JSON, else text).
 */
export const caller =
  <B>(billing: () => Pick<BillingUnderTest, "url">, headers: Readonly<Record<string, Record<string, string>>>) =>
  async (
    method: string,
    path: string,
    options: { as?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
  ) => {
    const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body))
    const response = await fetch(`${billing().url}${path}`, {
      method,
      headers: {
        ...(options.as ? headers[options.as] : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...options.headers,
      },
      ...(body === undefined ? {} : { body }),
    })
    const text = await response.text()
    const type = response.headers.get("content-type") ?? ""
    return {
      status: response.status,
      headers: response.headers,
      type,
      body: (type.includes("json") && text !== "" ? JSON.parse(text) : text) as B,
    }
  }
