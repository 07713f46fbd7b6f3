import { freshSchema } from "../../../shared/testing/harness.ts"
import type { TokenIssuer } from "../../authz/testing/authzHarness.ts"
import { type Grants, type SignedInUnderTest, startSignedIn } from "../../authz/testing/signedInApp.ts"
import { app } from "../App.ts"
import type { BillingConfig } from "../Config.ts"

/** Billing as main.ts runs it (its `app`) on the real Postgres. */
export type BillingUnderTest = SignedInUnderTest<BillingConfig>

/** A fresh billing schema name. */
export const freshBillingSchema = () => freshSchema("billing").schema

/**
 * Starts billing's `app` with its configuration read from the test environment and `env`: tokens from a test issuer
 * (`issuer`, else one of its own), permissions from `grants`, the test payment provider.
 */
export const startBilling = (options: {
  readonly grants: Grants
  readonly schema?: string
  readonly issuer?: TokenIssuer
  readonly env?: Record<string, string | undefined>
}): Promise<BillingUnderTest> =>
  startSignedIn(app, {
    ...options,
    schema: options.schema ?? freshBillingSchema(),
    env: { BILLING_PAYMENT_PROVIDER: "test", ...options.env },
  })

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
