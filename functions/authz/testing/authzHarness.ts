import { randomUUID } from "node:crypto"
import { ConfigProvider, Effect, Layer } from "effect"
import type { HttpServer } from "effect/http"
import { SessionRevocations } from "../../../shared/access/SessionRevocations.ts"
import type { DbOptions } from "../../../shared/Db.ts"
import { GrpcServer } from "../../../shared/GrpcServer.ts"
import type { ModuleManifest } from "../../../shared/Module.ts"
import * as PgEventBus from "../../../shared/PgEventBus.ts"
import * as Server from "../../../shared/Server.ts"
import { baseUrl, freshSchema, type Running, start } from "../../../shared/testing/harness.ts"
import { serveJwks } from "../../../shared/testing/jwksServer.ts"
import { SigningKeys } from "../../auth/SigningKeys.ts"
import { Tokens } from "../../auth/Tokens.ts"
import { authLayer, migrateAuth, randomKek, tokenOptions } from "../../auth/testing/authHarness.ts"
import { manifests } from "../../registry.ts"
import { AuthzApi } from "../Api.ts"
import { AccessLive, app, Background, DomainLive, Identity, Infrastructure } from "../App.ts"
import type { Authorizer } from "../Authorizer.ts"
import { type AuthzConfig, loadConfig } from "../Config.ts"
import { AuthzGrpc } from "../Grpc.ts"
import { HttpLive } from "../Http.ts"
import { PermissionRegistry } from "../PermissionRegistry.ts"
import { ADMIN_ROLE_ID, type RoleId, type UserId } from "../Role.ts"
import { Roles } from "../Roles.ts"

/** A made-up feature function's manifest, so that tests can grant `blog.*` before blog exists. */
export const blogManifest: Pick<ModuleManifest, "name" | "permissions"> = {
  name: "blog",
  permissions: [
    { name: "blog.post.create", description: "Write posts" },
    { name: "blog.post.delete", description: "Delete posts" },
    { name: "blog.comment.moderate", description: "Moderate comments" },
  ],
}

/** Every real manifest plus the made-up blog. */
export const testRegistry = PermissionRegistry.fromManifests([...manifests, blogManifest])

/** Auth's real signing keys (fresh schema) with their JWKS served over HTTP: what authz verifies bearer tokens with. */
export interface TokenIssuer {
  readonly jwksUrl: URL
  /** An access token for this user and a new session id. */
  issue(sub: string): Promise<string>
  close(): Promise<void>
}

/** Starts auth's key ring on a fresh schema and serves its JWKS on a free port. */
export const startIssuer = async (port = 0): Promise<TokenIssuer> => {
  const db = freshSchema("auth")
  await migrateAuth(db)
  const auth = (await start(authLayer(db, { kek: randomKek() }))) as Running<Tokens | SigningKeys>
  const inAuth = <A, E>(effect: Effect.Effect<A, E, Tokens | SigningKeys>) =>
    Effect.runPromise(effect.pipe(Effect.provideContext(auth.context)))
  const jwks = await serveJwks(() => inAuth(Effect.flatMap(Effect.service(SigningKeys), (keys) => keys.jwks())), port)
  return {
    jwksUrl: jwks.url,
    issue: (sub) =>
      inAuth(
        Effect.flatMap(Effect.service(Tokens), (tokens) => tokens.issueAccessToken({ sub, sid: crypto.randomUUID() })),
      ).then((issued) => issued.token),
    close: async () => {
      await jwks.close()
      await auth.close()
    },
  }
}

/** One authz instance: HTTP (port 0) and gRPC (port 0) on a schema of the real Postgres. */
export interface AuthzUnderTest {
  readonly url: string
  readonly grpcAddress: string
  readonly db: DbOptions
  readonly config: AuthzConfig
  readonly running: Running<HttpServer.HttpServer | GrpcServer | Roles | Authorizer>
  /** Headers of an administrator: a real access token of a user holding the built-in admin role. */
  readonly admin: Record<string, string>
  /** The administrator's user id (the actor of what the tests change through HTTP). */
  readonly adminId: string
  close(): Promise<void>
}

/**
 * Starts authz as main.ts wires it, with configuration read from `env` over the test environment (real Postgres and,
 * unless `REDIS_URL: undefined`, real Redis). Two instances given the same `schema` share their database (and Redis)
 * as two containers would. With `identitySchema`, the bootstrap consumer follows that schema's outbox (embedded bus).
 */
export const startAuthz = async (
  options: {
    readonly schema?: string
    readonly issuer?: TokenIssuer
    readonly identitySchema?: string
    readonly env?: Record<string, string | undefined>
    /** The gRPC port; default a free one. */
    readonly grpcPort?: number
  } = {},
): Promise<AuthzUnderTest> => {
  const db = { ...freshSchema("authz"), ...(options.schema ? { schema: options.schema } : {}) }
  // authz verifies bearer tokens itself: without an issuer from the test, it gets one of its own.
  const ownIssuer = options.issuer === undefined ? await startIssuer() : undefined
  const issuer = options.issuer ?? ownIssuer!
  const env: Record<string, string | undefined> = {
    ...process.env,
    DB_SCHEMA: db.schema,
    DB_POOL_MAX: "5",
    LOG_LEVEL: "warn",
    JWT_ISSUER: tokenOptions.issuer,
    JWT_AUDIENCE: tokenOptions.audience,
    AUTH_JWKS_URL: issuer.jwksUrl.toString(),
    ...options.env,
  }
  for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key]
  const config = await Effect.runPromise(
    loadConfig.pipe(
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: env as Record<string, string> }))),
    ),
  )
  const http = Server.serve(Server.guarded(HttpLive, app.routes), {
    api: AuthzApi,
    port: 0,
    maxBodyBytes: 64 * 1024,
  }).pipe(Layer.provide(AccessLive(config)), Layer.provide(SessionRevocations.layer))
  // Served as main.ts serves it: to the functions that depend on authz, with their development keys.
  const grpc = GrpcServer.layer({ port: options.grpcPort ?? 0, host: "127.0.0.1", services: [AuthzGrpc] }).pipe(
    Layer.provide(Identity(config)),
  )
  const identitySchema = options.identitySchema
  const events =
    identitySchema === undefined
      ? Layer.empty
      : Background(config).pipe(
          Layer.provide(PgEventBus.layer({ schemaOf: () => identitySchema, pollInterval: "50 millis" })),
        )
  const running = (await start(
    Layer.mergeAll(http, grpc, events).pipe(
      Layer.provideMerge(DomainLive(config, testRegistry)),
      Layer.provideMerge(Infrastructure(config)),
    ),
  )) as never as AuthzUnderTest["running"]
  const server = await Effect.runPromise(Effect.service(GrpcServer).pipe(Effect.provideContext(running.context)))
  const adminId = randomUUID()
  await Effect.runPromise(
    Effect.flatMap(Effect.service(Roles), (roles) => roles.assign(adminId as UserId, ADMIN_ROLE_ID as RoleId)).pipe(
      Effect.provideContext(running.context),
    ),
  )
  return {
    url: baseUrl(running),
    grpcAddress: `127.0.0.1:${server.port}`,
    db,
    config,
    running,
    admin: { authorization: `Bearer ${await issuer.issue(adminId)}` },
    adminId,
    close: async () => {
      await running.close()
      await ownIssuer?.close()
    },
  }
}
