import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as CloudEvent from "../../shared/CloudEvent.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { eventually, freshSchema, type Running, sql, start } from "../../shared/testing/harness.ts"
import { AdminGuard } from "../identity/AdminGuard.ts"
import { DomainLive as IdentityDomain } from "../identity/App.ts"
import { manifest as identityManifest } from "../identity/module.ts"
import { Users } from "../identity/Users.ts"
import { Authorizer } from "./Authorizer.ts"
import { ADMIN_ROLE_ID, type UserId } from "./Role.ts"
import { type AuthzUnderTest, startAuthz } from "./testing/authzHarness.ts"

// Identity's real domain writes its events to its outbox on a fresh schema; authz's bootstrap consumer follows it
// through the embedded bus (real Postgres) and makes BOOTSTRAP_ADMIN_EMAIL's account an administrator.
const kernel = { service: "identity", version: "test", logLevel: "warn" as const }
const identityDb = freshSchema("identity")
let identity: Running<Users>
let onCreate: AuthzUnderTest
let onVerify: AuthzUnderTest
const createdEmail = `boss-${randomUUID().slice(0, 8)}@example.com`
const verifiedEmail = `chief-${randomUUID().slice(0, 8)}@example.com`

beforeAll(async () => {
  identity = (await start(
    IdentityDomain.pipe(
      Layer.provide(AdminGuard.layerTest),
      Layer.provideMerge(Kernel.database({ ...kernel, db: identityDb, migrations: identityManifest.migrations })),
      Layer.provideMerge(Kernel.base(kernel)),
    ),
  )) as never as Running<Users>
  // The configured address in another case: emails compare case-insensitively.
  onCreate = await startAuthz({
    identitySchema: identityDb.schema,
    env: { BOOTSTRAP_ADMIN_EMAIL: createdEmail.toUpperCase() },
  })
  onVerify = await startAuthz({ identitySchema: identityDb.schema, env: { BOOTSTRAP_ADMIN_EMAIL: verifiedEmail } })
})
afterAll(async () => {
  await onCreate?.close()
  await onVerify?.close()
  await identity?.close()
  for (const schema of [identityDb.schema, onCreate?.db.schema, onVerify?.db.schema]) {
    if (schema) await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  }
})

const createUser = (email: string, emailVerified = false) =>
  Effect.runPromise(
    Effect.flatMap(Effect.service(Users), (users) => users.create({ email, name: "Boss", emailVerified })).pipe(
      Effect.provideContext(identity.context),
    ),
  )

// An event exactly as identity's outbox holds it (what Users.verifyEmail writes).
const publishVerified = (userId: string, email: string) => {
  const event = CloudEvent.make({
    source: "identity",
    type: "identity.email.verified",
    subject: userId,
    data: { userId, email, actor: null, target: userId, ip: null, requestId: null },
  })
  return sql(`INSERT INTO ${identityDb.schema}.outbox (id, topic, key, event) VALUES ($1, $2, $3, $4)`, [
    event.id,
    "identity.events",
    userId,
    JSON.stringify(event),
  ])
}

const isAdmin = (authz: AuthzUnderTest, userId: string) =>
  Effect.runPromise(
    Effect.flatMap(Effect.service(Authorizer), (a) => a.check(userId as UserId, "authz.role.delete")).pipe(
      Effect.provideContext(authz.running.context),
    ),
  ).then((decision) => decision.grant === "*")

const assignmentEvents = (authz: AuthzUnderTest, userId: string) =>
  sql(`SELECT event->>'type' AS type, event->'data' AS data FROM ${authz.db.schema}.outbox WHERE key = $1`, [userId])

describe("bootstrap administrator (BOOTSTRAP_ADMIN_EMAIL)", () => {
  it("an account created already verified (an OpenID Provider vouched) gets the admin role, once; others do not", async () => {
    const other = await createUser(`someone-${randomUUID().slice(0, 8)}@example.com`, true)
    const boss = await createUser(createdEmail, true)
    await eventually("the admin role", () => isAdmin(onCreate, boss.id))
    const roles = await sql(`SELECT role_id FROM ${onCreate.db.schema}.user_roles WHERE user_id = $1`, [boss.id])
    expect(roles).toEqual([{ role_id: ADMIN_ROLE_ID }])
    // Verification of the same account later changes nothing (and publishes nothing).
    await publishVerified(boss.id, createdEmail)
    await eventually("the verification to be consumed", async () => {
      const done = await sql(`SELECT count(*)::int AS n FROM ${onCreate.db.schema}.inbox`)
      return done[0].n >= 3
    })
    expect(await assignmentEvents(onCreate, boss.id)).toEqual([
      { type: "authz.assignment.created", data: expect.objectContaining({ userId: boss.id, roleId: ADMIN_ROLE_ID }) },
    ])
    expect(await isAdmin(onCreate, other.id)).toBe(false)
    // The other instance is configured with another address: nobody there became admin.
    expect(await isAdmin(onVerify, boss.id)).toBe(false)
  })

  it("a registration with that email that is not verified yet gets nothing (no takeover by registering first)", async () => {
    const squatter = await createUser(verifiedEmail)
    await eventually("the creation to be consumed", async () => {
      const done = await sql(`SELECT count(*)::int AS n FROM ${onVerify.db.schema}.inbox WHERE event_id IS NOT NULL`)
      return done[0].n >= 1
    })
    await new Promise((r) => setTimeout(r, 300))
    expect(await isAdmin(onVerify, squatter.id)).toBe(false)
  })

  it("the account verified with that email gets the admin role", async () => {
    const userId = randomUUID()
    expect(await isAdmin(onVerify, userId)).toBe(false)
    await publishVerified(userId, verifiedEmail.toUpperCase())
    await eventually("the admin role after verification", () => isAdmin(onVerify, userId))
  })
})
