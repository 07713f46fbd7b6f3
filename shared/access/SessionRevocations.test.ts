import { randomBytes } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, type Duration, Effect, Exit, Layer, Scope } from "effect"
import pg from "pg"
import { topicOf } from "../CloudEvent.ts"
import { Db } from "../Db.ts"
import { EventBus } from "../EventBus.ts"
import { Health } from "../Health.ts"
import { Kafka } from "../Kafka.ts"
import * as KafkaEventBus from "../KafkaEventBus.ts"
import { Outbox } from "../Outbox.ts"
import { OutboxRelay } from "../OutboxRelay.ts"
import * as PgEventBus from "../PgEventBus.ts"
import { serviceDb, testKafka, waitUntil } from "../testing/busHarness.ts"
import * as SessionRevocations from "./SessionRevocations.ts"

// The embedded default: no Redis, so a verifier in another process learns of revocations from auth's events.
const feed: SessionRevocations.RevocationFeed = { topic: "auth.events", type: "auth.session.revoked" }

// auth's outbox on `db`, publishing on `<service>.events`.
const outboxOn = (db: Db["Service"], service = "auth") =>
  Effect.map(Layer.build(Outbox.layer(service).pipe(Layer.provide(Layer.succeed(Db, db)))), (c) =>
    Context.get(c, Outbox),
  )

const revoke = (auth: Db["Service"], outbox: Outbox["Service"], sid: string) =>
  auth.transaction(
    outbox.publish({
      type: feed.type,
      subject: "user-1",
      data: { sessionId: sid, userId: "user-1", reason: "logout", ttlSeconds: 900 },
    }),
  )

/**
 * A verifier process without Redis: its revocations following the feed on the bus `bus` builds, in a scope of its own
 * within the test's (stopping it ends the process: the next one starts from nothing, as after a restart).
 */
const startVerifier = (
  bus: Layer.Layer<EventBus>,
  options: { readonly feed?: SessionRevocations.RevocationFeed; readonly catchUpWait?: Duration.Input } = {},
) =>
  Effect.gen(function* () {
    const scope = yield* Scope.fork(yield* Effect.scope)
    const context = yield* Layer.buildWithScope(
      SessionRevocations.following({
        service: "verifier",
        feed: options.feed ?? feed,
        ...(options.catchUpWait !== undefined ? { catchUpWait: options.catchUpWait } : {}),
      }).pipe(
        Layer.provide(bus),
        Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: {} }))),
        Layer.provide(Health.layer),
      ),
      scope,
    )
    return {
      revocations: Context.get(context, SessionRevocations.SessionRevocations),
      stop: Scope.close(scope, Exit.void),
    }
  })

// The embedded bus of a verifier on `verifier`'s schema, reading auth's outbox on `auth`'s.
const pgBus = (verifier: Db["Service"], auth: Db["Service"]) =>
  Layer.effect(EventBus, PgEventBus.make({ pollInterval: "50 millis", schemaOf: () => auth.schema })).pipe(
    Layer.provide(Layer.succeed(Db, verifier)),
  )

describe("SessionRevocations.following", () => {
  it.live("without Redis, a session revoked by auth is refused by another process within a second", () =>
    Effect.gen(function* () {
      const auth = yield* serviceDb("t_auth")
      const verifier = yield* serviceDb("t_verifier")
      const outbox = yield* outboxOn(auth)
      const { revocations } = yield* startVerifier(pgBus(verifier, auth))
      assert.isFalse(yield* revocations.isRevoked("sid-1"))
      const started = Date.now()
      yield* revoke(auth, outbox, "sid-1")
      yield* waitUntil("the revocation to arrive", revocations.isRevoked("sid-1"), "5 seconds")
      assert.isBelow(Date.now() - started, 1_000)
      assert.isFalse(yield* revocations.isRevoked("sid-2"))
    }).pipe(Effect.scoped),
  )

  it.live(
    "without Redis, a restarted verifier refuses a session revoked before its restart at its very first check",
    () =>
      Effect.gen(function* () {
        const auth = yield* serviceDb("t_auth")
        const verifier = yield* serviceDb("t_verifier")
        const outbox = yield* outboxOn(auth)
        const before = yield* startVerifier(pgBus(verifier, auth))
        yield* revoke(auth, outbox, "sid-1")
        yield* waitUntil("the revocation to arrive", before.revocations.isRevoked("sid-1"), "5 seconds")
        yield* before.stop

        const after = yield* startVerifier(pgBus(verifier, auth))
        // The very first answer once the layer is built: the replay of what auth published before has not been
        // waited for by anything but this check.
        assert.isTrue(yield* after.revocations.isRevoked("sid-1"))
        assert.isFalse(yield* after.revocations.isRevoked("sid-2"))
      }).pipe(Effect.scoped),
  )

  it.live(
    "without Redis, a verifier that cannot catch up refuses with 503 instead of answering from part of the events",
    () =>
      Effect.gen(function* () {
        const auth = yield* serviceDb("t_auth")
        const verifier = yield* serviceDb("t_verifier")
        const outbox = yield* outboxOn(auth)
        // A transaction older than the revocation, still open: the bus reads no row written after it began (a row it
        // could still write would come before them), so the replay cannot reach the revocation until it ends.
        const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
        yield* Effect.acquireRelease(
          Effect.promise(async () => {
            await client.connect()
            await client.query("BEGIN")
            await client.query("SELECT pg_current_xact_id()")
          }),
          () => Effect.promise(() => client.end().catch(() => undefined)),
        )
        yield* revoke(auth, outbox, "sid-1")

        const { revocations } = yield* startVerifier(pgBus(verifier, auth), { catchUpWait: "300 millis" })
        const refused = yield* Effect.exit(revocations.isRevoked("sid-1"))
        assert.isTrue(Exit.isFailure(refused))
        if (Exit.isFailure(refused)) assert.include(String(refused.cause), "ServiceUnavailable")

        yield* Effect.promise(() => client.query("ROLLBACK"))
        yield* waitUntil(
          "the replay to reach the revocation",
          Effect.map(Effect.exit(revocations.isRevoked("sid-1")), (exit) => Exit.isSuccess(exit) && exit.value),
          "10 seconds",
        )
        assert.isFalse(yield* revocations.isRevoked("sid-2"))
      }).pipe(Effect.scoped),
  )

  it.live(
    "on Kafka without Redis, a restarted verifier refuses a session revoked before its restart at its very first check",
    () =>
      Effect.gen(function* () {
        const auth = yield* serviceDb("t_auth")
        const verifier = yield* serviceDb("t_verifier")
        const kafka = yield* testKafka
        // A topic of this test's own: auth's outbox under a fresh name, relayed to Kafka as in production.
        const service = `t_${randomBytes(5).toString("hex")}`
        const ownFeed = { topic: topicOf(service), type: feed.type }
        const outbox = yield* outboxOn(auth, service)
        yield* Layer.build(OutboxRelay.layer({ pollInterval: "50 millis", topics: [ownFeed.topic] })).pipe(
          Effect.provideService(Db, auth),
          Effect.provideService(Kafka, kafka),
        )
        const kafkaBus = Layer.effect(EventBus, KafkaEventBus.make()).pipe(
          Layer.provide(Layer.succeed(Db, verifier)),
          Layer.provide(Layer.succeed(Kafka, kafka)),
        )
        // Joining a consumer group takes a while on a busy machine: the first check may wait for it.
        const options = { feed: ownFeed, catchUpWait: "60 seconds" } as const
        const before = yield* startVerifier(kafkaBus, options)
        yield* revoke(auth, outbox, "sid-1")
        yield* waitUntil("the revocation to arrive", before.revocations.isRevoked("sid-1"), "30 seconds")
        yield* before.stop

        const after = yield* startVerifier(kafkaBus, options)
        assert.isTrue(yield* after.revocations.isRevoked("sid-1"))
        assert.isFalse(yield* after.revocations.isRevoked("sid-2"))
      }).pipe(Effect.scoped),
    90_000,
  )
})
