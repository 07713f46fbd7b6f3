import { randomBytes, randomUUID } from "node:crypto"
import * as grpc from "@grpc/grpc-js"
import { ConfigProvider, Effect, Layer } from "effect"
import type { HttpServer } from "effect/http"
import { AuditServiceClient, type RecordRequest, type RecordResponse } from "../../../proto/gen/audit/v1/audit.ts"
import * as Authentication from "../../../shared/access/Authentication.ts"
import { Permissions } from "../../../shared/access/Permissions.ts"
import { SessionRevocations } from "../../../shared/access/SessionRevocations.ts"
import { GrpcServer } from "../../../shared/GrpcServer.ts"
import * as Server from "../../../shared/Server.ts"
import { baseUrl, freshSchema, type Running, start } from "../../../shared/testing/harness.ts"
import { serviceToken } from "../../../shared/testing/serviceToken.ts"
import { tokenOptions } from "../../auth/testing/authHarness.ts"
import { startIssuer } from "../../authz/testing/authzHarness.ts"
import { AuditApi } from "../Api.ts"
import { app, Bus, DomainLive, Identity, Infrastructure, WorkingDb } from "../App.ts"
import * as AuditEvents from "../AuditEvents.ts"
import type { AuditLog } from "../AuditLog.ts"
import { type AuditConfig, loadConfig } from "../Config.ts"
import { AuditGrpc } from "../Grpc.ts"
import { HttpLive } from "../Http.ts"

/** Audit as main.ts runs it (HTTP and gRPC on port 0, the event consumer) on the real Postgres. */
export interface AuditUnderTest {
  readonly url: string
  readonly grpcAddress: string
  readonly config: AuditConfig
  readonly running: Running<HttpServer.HttpServer | GrpcServer | AuditLog>
  /** Headers of an administrator: a real access token of a user the harness's authz stand-in grants everything. */
  readonly admin: Record<string, string>
  close(): Promise<void>
}

/** Settings of one start; pass the same `schema` and `group` again to restart the same audit log. */
export interface AuditOptions {
  /** The audit schema; default a fresh one. */
  readonly schema?: string
  /** Consume from the real Kafka (`KAFKA_BROKERS`); else the Postgres-backed bus. */
  readonly kafka?: boolean
  /** Extra environment (AUDIT_TOPICS, AUDIT_CONSUMER_GROUP, AUDIT_DB_ROLE, ...). */
  readonly env?: Record<string, string>
}

/** A fresh audit schema name. */
export const freshAuditSchema = () => freshSchema("audit").schema

/** Starts audit with its configuration read from the test environment and `options.env`. */
export const startAudit = async (options: AuditOptions = {}): Promise<AuditUnderTest> => {
  const schema = options.schema ?? freshAuditSchema()
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DB_SCHEMA: schema,
    DB_POOL_MAX: "8",
    LOG_LEVEL: "warn",
    AUDIT_CONSUMER_GROUP: schema,
    JWT_ISSUER: tokenOptions.issuer,
    JWT_AUDIENCE: tokenOptions.audience,
    ...options.env,
  }
  if (!options.kafka) delete env.KAFKA_BROKERS
  const issuer = await startIssuer()
  const config = await Effect.runPromise(
    loadConfig.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env })))),
  )
  // authz's answers (tested in authz and through the platform) stand in here: only the administrator holds anything.
  const adminId = randomUUID()
  const access = Layer.merge(
    Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: issuer.jwksUrl } }),
    Permissions.local((userId) => Effect.succeed(userId === adminId)),
  ).pipe(Layer.provide(SessionRevocations.layer))
  const http = Server.serve(Server.guarded(HttpLive, app.routes), {
    api: AuditApi,
    port: 0,
    maxBodyBytes: config.maxBodyBytes,
  }).pipe(Layer.provide(access))
  const grpcServer = GrpcServer.layer({ port: 0, host: "127.0.0.1", services: [AuditGrpc] })
  const running = (await start(
    Layer.mergeAll(http, grpcServer, AuditEvents.layer({ topics: config.auditTopics, group: config.auditGroup })).pipe(
      Layer.provide(Bus(config)),
      Layer.provide(Identity(config)),
      Layer.provideMerge(DomainLive),
      Layer.provideMerge(WorkingDb(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
  )) as never as AuditUnderTest["running"]
  const server = await Effect.runPromise(Effect.service(GrpcServer).pipe(Effect.provideContext(running.context)))
  return {
    url: baseUrl(running),
    grpcAddress: `127.0.0.1:${server.port}`,
    config,
    running,
    admin: { authorization: `Bearer ${await issuer.issue(adminId)}` },
    close: async () => {
      await running.close()
      await issuer.close()
    },
  }
}

/** A plain grpc-js client of audit's Record, with optional call metadata. */
export const recordClient = (address: string) => {
  const client = new AuditServiceClient(address, grpc.credentials.createInsecure())
  // The gateway is the function that depends on audit: its service token goes with every call unless one is given.
  const token = serviceToken("gateway", "audit")
  const record = (request: Partial<RecordRequest>, metadata: Record<string, string> = {}) =>
    token.then(
      (bearer) =>
        new Promise<RecordResponse>((resolve, reject) => {
          const md = new grpc.Metadata()
          md.set("authorization", `Bearer ${bearer}`)
          for (const [k, v] of Object.entries(metadata)) md.set(k, v)
          client.record(
            {
              id: "",
              occurredAt: "",
              actorId: "",
              action: "",
              targetType: "",
              targetId: "",
              outcome: "",
              requestId: "",
              ip: "",
              metadataJson: "",
              ...request,
            },
            md,
            (error, response) => (error ? reject(error) : resolve(response)),
          )
        }),
    )
  return { record, close: () => client.close() }
}

/** A random suffix for names in a test. */
export const suffix = () => randomBytes(4).toString("hex")
