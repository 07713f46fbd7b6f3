import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import type { HttpServer } from "effect/http"
import * as Authentication from "../../../shared/access/Authentication.ts"
import { AuthzClient, Permissions } from "../../../shared/access/Permissions.ts"
import { SessionRevocations } from "../../../shared/access/SessionRevocations.ts"
import type { DbOptions } from "../../../shared/Db.ts"
import * as Kernel from "../../../shared/Kernel.ts"
import * as Server from "../../../shared/Server.ts"
import { ServiceIdentity } from "../../../shared/ServiceIdentity.ts"
import { baseUrl, freshSchema, type Running, start } from "../../../shared/testing/harness.ts"
import { serveJwks } from "../../../shared/testing/jwksServer.ts"
import { SigningKeys } from "../../auth/SigningKeys.ts"
import { Tokens } from "../../auth/Tokens.ts"
import { authLayer, migrateAuth, randomKek, tokenOptions } from "../../auth/testing/authHarness.ts"
import { AdminGuard } from "../AdminGuard.ts"
import { IdentityApi } from "../Api.ts"
import { DomainLive, app as identity } from "../App.ts"
import { HttpLive } from "../Http.ts"
import { manifest } from "../module.ts"
import type { Users } from "../Users.ts"

/** Identity's HTTP app on a real server, with the real auth code issuing tokens and serving its JWKS. */
export interface IdentityUnderTest {
  readonly url: string
  /** Identity's fresh schema. */
  readonly db: DbOptions
  readonly app: Running<HttpServer.HttpServer | Users | SessionRevocations>
  /** Auth's signing keys and tokens on their own fresh schema. */
  readonly auth: Running<Tokens | SigningKeys>
  /** Headers of an administrator: a real access token of a user the harness's authz stand-in grants everything. */
  readonly admin: Record<string, string>
  close(): Promise<void>
}

/**
 * Starts auth's keys (fresh schema, JWKS on node:http) and identity (fresh schema, port 0) verifying against them.
 * With `authzGrpcAddress`, the last-administrator guard asks that authz (as identity, development keys); without,
 * every status change is allowed.
 */
export const startIdentity = async (
  options: { readonly authzGrpcAddress?: string } = {},
): Promise<IdentityUnderTest> => {
  const authDb = freshSchema("auth")
  await migrateAuth(authDb)
  const auth = (await start(authLayer(authDb, { kek: randomKek() }))) as Running<Tokens | SigningKeys>
  const jwks = await serveJwks(() =>
    Effect.runPromise(
      Effect.flatMap(Effect.service(SigningKeys), (keys) => keys.jwks()).pipe(Effect.provideContext(auth.context)),
    ),
  )
  const kernel = { service: "identity", version: "test", logLevel: "warn" as const }
  const db = freshSchema("identity")
  const authentication = Authentication.layer({
    issuer: tokenOptions.issuer,
    audience: tokenOptions.audience,
    jwks: { url: jwks.url },
  })
  // authz's answers (tested in authz and through the platform) stand in here: only the administrator holds anything.
  const adminId = randomUUID()
  const permissions = Permissions.local((userId) => Effect.succeed(userId === adminId))
  const adminGuard =
    options.authzGrpcAddress === undefined
      ? AdminGuard.layerTest
      : AdminGuard.layer.pipe(
          Layer.provide(AuthzClient.layer({ address: options.authzGrpcAddress })),
          Layer.provide(ServiceIdentity.layerDev("identity", [], ["authz"])),
        )
  const app = (await start(
    Server.serve(Server.guarded(HttpLive, identity.routes), {
      port: 0,
      api: IdentityApi,
      maxBodyBytes: 64 * 1024,
    }).pipe(
      Layer.provide([authentication, permissions]),
      Layer.provideMerge(SessionRevocations.layer),
      Layer.provideMerge(DomainLive),
      Layer.provide(adminGuard),
      Layer.provideMerge(Kernel.database({ ...kernel, db, migrations: manifest.migrations })),
      Layer.provideMerge(Kernel.base(kernel)),
    ),
  )) as never as IdentityUnderTest["app"]
  const adminToken = await Effect.runPromise(
    Effect.flatMap(Effect.service(Tokens), (tokens) =>
      tokens.issueAccessToken({ sub: adminId, sid: randomUUID() }),
    ).pipe(Effect.provideContext(auth.context)),
  )
  return {
    url: baseUrl(app),
    db,
    app,
    auth,
    admin: { authorization: `Bearer ${adminToken.token}` },
    close: async () => {
      await app.close()
      await jwks.close()
      await auth.close()
    },
  }
}
