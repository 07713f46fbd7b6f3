import { randomUUID } from "node:crypto"
import { Effect } from "effect"
import { decodeJwt } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SessionRevocations } from "../../shared/access/SessionRevocations.ts"
import { testKafka, waitUntil } from "../../shared/testing/busHarness.ts"
import { sql } from "../../shared/testing/harness.ts"
import { Users } from "../identity/Users.ts"
import { type AuthUnderTest, type IdentityUnderTest, startAuth, startIdentityGrpc } from "./testing/authApp.ts"

// auth and identity wired as in production: outboxes relayed to the real Kafka, auth consuming identity.events.
let identity: IdentityUnderTest
let auth: AuthUnderTest
beforeAll(async () => {
  identity = await startIdentityGrpc({ kafka: true })
  auth = await startAuth(identity, {}, { kafka: true })
}, 90_000)
afterAll(async () => {
  await auth?.close()
  await identity?.running.close()
})

const post = (path: string, body: unknown) =>
  fetch(`${auth.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  })

// Reads a topic from the beginning until a message satisfies `match`.
const findOnTopic = (topic: string, match: (event: { type: string; data: Record<string, unknown> }) => boolean) =>
  Effect.gen(function* () {
    const kafka = yield* testKafka
    const found: Array<{ type: string; data: Record<string, unknown> }> = []
    const consumer = kafka.client.consumer({ groupId: `reader-${randomUUID()}`, maxWaitTimeInMs: 200 })
    yield* Effect.acquireRelease(
      Effect.promise(async () => {
        await consumer.connect()
        await consumer.subscribe({ topics: [topic], fromBeginning: true })
        await consumer.run({
          eachMessage: async ({ message }) => {
            const event = JSON.parse(message.value?.toString() ?? "{}")
            if (match(event)) found.push(event)
          },
        })
      }),
      () => Effect.promise(() => consumer.disconnect()),
    )
    yield* waitUntil(`a matching event on ${topic}`, () => found.length > 0, "60 seconds")
    return found[0]!
  }).pipe(Effect.scoped)

describe("auth and identity over the real Kafka", () => {
  it("sign-in events reach auth.events; identity's reset reaches auth and ends the sessions", async () => {
    const email = `kafka-${Date.now()}@example.com`
    const password = "correct horse battery"
    const registered = await post("/api/v1/auth/register", { email, password, name: "Kay" })
    const user = (await registered.json()) as { id: string }
    const login = await post("/api/v1/auth/login", { email, password })
    const tokens = (await login.json()) as { access_token: string }

    const succeeded = await Effect.runPromise(
      findOnTopic("auth.events", (e) => e.type === "auth.login.succeeded" && e.data.userId === user.id),
    )
    expect(succeeded.data).toMatchObject({ actor: user.id, target: user.id, method: "password" })

    const runUsers = <A, E>(f: (users: Users["Service"]) => Effect.Effect<A, E>) =>
      Effect.runPromise(Effect.flatMap(Effect.service(Users), f).pipe(Effect.provideContext(identity.running.context)))
    await runUsers((users) => users.requestPasswordReset(email))
    const [mail] = await sql(
      `SELECT text FROM ${identity.db.schema}.mail_outbox WHERE "to" = $1 AND subject ILIKE '%reset%'`,
      [email],
    )
    const token = /reset-password\?token=([A-Za-z0-9_-]+)/.exec(String(mail?.text))?.[1]
    await runUsers((users) => users.confirmPasswordReset(token!, "a brand new password"))

    const sid = decodeJwt(tokens.access_token).sid as string
    await Effect.runPromise(
      waitUntil(
        "the reset to end the session through Kafka",
        Effect.flatMap(Effect.service(SessionRevocations), (r) => r.isRevoked(sid)).pipe(
          Effect.provideContext(auth.running.context),
          Effect.orDie,
        ),
        "60 seconds",
      ),
    )
    const revoked = await Effect.runPromise(
      findOnTopic("auth.events", (e) => e.type === "auth.session.revoked" && e.data.sessionId === sid),
    )
    expect(revoked.data).toMatchObject({ reason: "password_reset", userId: user.id })
  }, 120_000)
})
