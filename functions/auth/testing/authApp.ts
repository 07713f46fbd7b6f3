import { ConfigProvider, Effect, Layer, Option, Redacted } from "effect"
import type { HttpServer } from "effect/http"
import type { SessionRevocations } from "../../../shared/access/SessionRevocations.ts"
import type { DbOptions } from "../../../shared/Db.ts"
import { GrpcServer } from "../../../shared/GrpcServer.ts"
import * as Kernel from "../../../shared/Kernel.ts"
import * as PgEventBus from "../../../shared/PgEventBus.ts"
import * as Server from "../../../shared/Server.ts"
import { callersOf, ServiceIdentity } from "../../../shared/ServiceIdentity.ts"
import { baseUrl, freshSchema, type Running, start } from "../../../shared/testing/harness.ts"
import { AdminGuard } from "../../identity/AdminGuard.ts"
import { DomainLive as IdentityDomain } from "../../identity/App.ts"
import { IdentityGrpc } from "../../identity/Grpc.ts"
import { manifest as identityManifest } from "../../identity/module.ts"
import type { Users } from "../../identity/Users.ts"
import { manifests } from "../../registry.ts"
import { AuthApi } from "../Api.ts"
import { AccessLive, app, Background, DomainLive, Identity, Infrastructure } from "../App.ts"
import { type AuthConfig, loadConfig } from "../Config.ts"
import { AuthGrpc } from "../Grpc.ts"
import { HttpLive } from "../Http.ts"
import { IdentityEventsLive } from "../IdentityEvents.ts"
import type { Sessions } from "../Sessions.ts"
import { randomKek } from "./authHarness.ts"

/** Identity's gRPC server on a fresh schema (what auth signs users in against). */
export interface IdentityUnderTest {
  readonly db: DbOptions
  readonly address: string
  readonly running: Running<GrpcServer | Users>
}

/**
 * Starts identity's domain and gRPC server (port 0) on a fresh schema of the real Postgres; with `kafka`, also the
 * relay publishing its outbox to the real Kafka (`KAFKA_BROKERS`).
 */
export const startIdentityGrpc = async (options: { readonly kafka?: boolean } = {}): Promise<IdentityUnderTest> => {
  const kernel = { service: "identity", version: "test", logLevel: "warn" as const }
  const db = freshSchema("identity")
  const relay = options.kafka
    ? Kernel.events(identityManifest, { kafkaBrokers: Option.some(kafkaBrokers()) })
    : Layer.empty
  const running = (await start(
    Layer.mergeAll(
      GrpcServer.layer({ port: 0, host: "127.0.0.1", services: [IdentityGrpc] }).pipe(
        Layer.provide(ServiceIdentity.layerDev("identity", callersOf("identity", manifests))),
      ),
      relay,
    ).pipe(
      Layer.provideMerge(IdentityDomain),
      Layer.provide(AdminGuard.layerTest),
      Layer.provideMerge(Kernel.database({ ...kernel, db, migrations: identityManifest.migrations })),
      Layer.provideMerge(Kernel.base(kernel)),
    ),
  )) as never as Running<GrpcServer | Users>
  const server = await Effect.runPromise(Effect.service(GrpcServer).pipe(Effect.provideContext(running.context)))
  return { db, address: `127.0.0.1:${server.port}`, running }
}

/** Auth's HTTP app (port 0) and gRPC server (port 0) on a fresh schema, signing in against `identity`. */
export interface AuthUnderTest {
  readonly url: string
  readonly grpcAddress: string
  readonly config: AuthConfig
  readonly running: Running<HttpServer.HttpServer | Sessions | SessionRevocations | GrpcServer>
  close(): Promise<void>
}

const kafkaBrokers = () => {
  const brokers = process.env.KAFKA_BROKERS
  if (!brokers) throw new Error("KAFKA_BROKERS is not set: run the tests through `npm test` (it starts the servers)")
  return brokers.split(",")
}

/**
 * Starts auth as main.ts does, with configuration read from `env` over the test environment (real Postgres and
 * Redis). Events: the embedded bus reading identity's outbox, or with `kafka` main.ts's wiring on the real Kafka
 * (relay of auth's outbox, consumer of identity.events).
 */
export const startAuth = async (
  identity: IdentityUnderTest,
  env: Record<string, string> = {},
  options: { readonly kafka?: boolean } = {},
): Promise<AuthUnderTest> => {
  const db = freshSchema("auth")
  const config = await Effect.runPromise(
    loadConfig.pipe(
      Effect.provide(
        ConfigProvider.layer(
          ConfigProvider.fromEnv({
            env: {
              ...(process.env as Record<string, string>),
              KEY_ENCRYPTION_KEY: Redacted.value(randomKek()),
              DB_SCHEMA: db.schema,
              DB_POOL_MAX: "5",
              IDENTITY_GRPC_URL: identity.address,
              LOG_LEVEL: "warn",
              LOGIN_IP_LIMIT_PER_MINUTE: "100000",
              ...env,
            },
          }),
        ),
      ),
    ),
  )
  const http = Server.serve(Server.guarded(HttpLive, app.routes), {
    api: AuthApi,
    port: 0,
    maxBodyBytes: config.maxBodyBytes,
  }).pipe(Layer.provide(AccessLive(config)))
  const grpc = GrpcServer.layer({ port: 0, host: "127.0.0.1", services: [AuthGrpc] })
  const events = options.kafka
    ? Background({ ...config, kafkaBrokers: Option.some(kafkaBrokers()) })
    : IdentityEventsLive.pipe(
        Layer.provide(PgEventBus.layer({ schemaOf: () => identity.db.schema, pollInterval: "50 millis" })),
      )
  const running = (await start(
    Layer.mergeAll(http, grpc, events).pipe(
      Layer.provideMerge(DomainLive(config)),
      Layer.provide(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
  )) as never as AuthUnderTest["running"]
  const server = await Effect.runPromise(Effect.service(GrpcServer).pipe(Effect.provideContext(running.context)))
  return { url: baseUrl(running), grpcAddress: `127.0.0.1:${server.port}`, config, running, close: running.close }
}
