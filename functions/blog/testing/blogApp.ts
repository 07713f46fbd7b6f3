import { freshSchema } from "../../../shared/testing/harness.ts"
import type { TokenIssuer } from "../../authz/testing/authzHarness.ts"
import { type Grants, type SignedInUnderTest, signedInEnv, startSignedIn } from "../../authz/testing/signedInApp.ts"
import { app } from "../App.ts"
import type { BlogConfig } from "../Config.ts"

export { type Grants, grantsStandIn } from "../../authz/testing/signedInApp.ts"

/** Blog as main.ts runs it (its `app`: HTTP, its jobs, its background work) on the real Postgres. */
export type BlogUnderTest = SignedInUnderTest<BlogConfig>

/** What blog needs besides every signed-in function's environment: the base of its feed's links. */
const BLOG_ENV = { APP_BASE_URL: "https://blog.example" }

/** Environment of a blog under test: its schema, the test issuer's keys, the embedded bus (no Kafka). */
export const blogEnv = (schema: string, jwksUrl: string): Record<string, string | undefined> => ({
  ...signedInEnv(schema, jwksUrl),
  ...BLOG_ENV,
})

/** A fresh blog schema name. */
export const freshBlogSchema = () => freshSchema("blog").schema

/**
 * Starts blog's `app` with its configuration read from the test environment and `env`: tokens from a test issuer
 * (`issuer`, else one of its own) and permissions from `grants`.
 */
export const startBlog = (options: {
  readonly grants: Grants
  readonly schema?: string
  readonly issuer?: TokenIssuer
  readonly env?: Record<string, string | undefined>
}): Promise<BlogUnderTest> =>
  startSignedIn(app, {
    ...options,
    schema: options.schema ?? freshBlogSchema(),
    env: { ...BLOG_ENV, ...options.env },
  })
