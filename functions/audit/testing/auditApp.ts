import { randomBytes, randomUUID } from "node:crypto"
import * as grpc from "@grpc/grpc-js"
import { Effect } from "effect"
import { AuditServiceClient, type RecordRequest, type RecordResponse } from "../../../proto/gen/audit/v1/audit.ts"
import { Permissions } from "../../../shared/access/Permissions.ts"
import { type AppUnderTest, startApp } from "../../../shared/testing/appHarness.ts"
import { freshSchema } from "../../../shared/testing/harness.ts"
import { serviceToken } from "../../../shared/testing/serviceToken.ts"
import { tokenOptions } from "../../auth/testing/authHarness.ts"
import { startIssuer } from "../../authz/testing/authzHarness.ts"
import { app } from "../App.ts"
import type { AuditLog } from "../AuditLog.ts"
import type { AuditConfig } from "../Config.ts"

/** Audit as main.ts runs it (its `app`: HTTP and gRPC on free ports, the event consumer) on the real Postgres. */
export interface AuditUnderTest extends AppUnderTest<AuditConfig, AuditLog> {
  /** Headers of an administrator: a real access token of a user the harness's authz stand-in grants everything. */
  readonly admin: Record<string, string>
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

/**
 * Starts audit's `app` with its configuration read from the test environment and `options.env`: tokens from a test
 * issuer, and authz's answers (tested in authz and through the platform) stood in for: only the administrator holds
 * anything.
 */
export const startAudit = async (options: AuditOptions = {}): Promise<AuditUnderTest> => {
  const schema = options.schema ?? freshAuditSchema()
  const issuer = await startIssuer()
  const adminId = randomUUID()
  const running = await startApp(app, {
    env: {
      DB_SCHEMA: schema,
      DB_POOL_MAX: "8",
      AUDIT_CONSUMER_GROUP: schema,
      JWT_ISSUER: tokenOptions.issuer,
      JWT_AUDIENCE: tokenOptions.audience,
      AUTH_JWKS_URL: issuer.jwksUrl.href,
      ...(options.kafka ? {} : { KAFKA_BROKERS: undefined }),
      ...options.env,
    },
    standIns: () => Permissions.local((userId) => Effect.succeed(userId === adminId)),
  })
  return {
    ...running,
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
