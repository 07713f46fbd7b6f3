import { Effect } from "effect"
import { Permissions } from "../../../shared/access/Permissions.ts"
import type { DefinedApp } from "../../../shared/FunctionApp.ts"
import { type AppUnderTest, startApp } from "../../../shared/testing/appHarness.ts"
import { tokenOptions } from "../../auth/testing/authHarness.ts"
import { startIssuer, type TokenIssuer } from "./authzHarness.ts"

/** Who holds which permission: authz's answers, stood in for (authz is tested in authz and through the platform). */
export type Grants = Readonly<Record<string, ReadonlyArray<string>>>

/** The stand-in for authz: a user holds exactly the permissions `grants` lists for them. */
export const grantsStandIn = (grants: Grants) =>
  Permissions.local((userId, permission) => Effect.succeed(grants[userId]?.includes(permission) ?? false))

/** A feature function under test whose callers sign in: its `app` on the real Postgres, in a schema of its own. */
export interface SignedInUnderTest<C> extends AppUnderTest<C> {
  /** The `Authorization` header of a user: a real access token from the test issuer. */
  readonly as: (userId: string) => Promise<Record<string, string>>
  readonly schema: string
}

/** The environment of a feature function under test: its schema, the test issuer's keys, the embedded bus (no Kafka). */
export const signedInEnv = (schema: string, jwksUrl: string): Record<string, string | undefined> => ({
  DB_SCHEMA: schema,
  DB_POOL_MAX: "8",
  JWT_ISSUER: tokenOptions.issuer,
  JWT_AUDIENCE: tokenOptions.audience,
  AUTH_JWKS_URL: jwksUrl,
  KAFKA_BROKERS: undefined,
})

/**
 * Starts a feature function's `app` as main.ts runs it (HTTP, its jobs, its background work) in `schema`, on the
 * embedded bus unless `env` says otherwise: tokens from a test issuer (`issuer`, else one of its own, closed with it)
 * and permissions from `grants`.
 */
export const startSignedIn = async <C>(
  app: DefinedApp<C>,
  options: {
    readonly schema: string
    readonly grants: Grants
    readonly issuer?: TokenIssuer | undefined
    readonly env?: Record<string, string | undefined> | undefined
  },
): Promise<SignedInUnderTest<C>> => {
  const issuer = options.issuer ?? (await startIssuer())
  const running = await startApp(app, {
    env: { ...signedInEnv(options.schema, issuer.jwksUrl.href), ...options.env },
    standIns: () => grantsStandIn(options.grants),
  })
  return {
    ...running,
    schema: options.schema,
    as: async (userId) => ({ authorization: `Bearer ${await issuer.issue(userId)}` }),
    close: async () => {
      await running.close()
      if (options.issuer === undefined) await issuer.close()
    },
  }
}
