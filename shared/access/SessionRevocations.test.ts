import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { Db } from "../Db.ts"
import { EventBus } from "../EventBus.ts"
import { Health } from "../Health.ts"
import { Outbox } from "../Outbox.ts"
import * as PgEventBus from "../PgEventBus.ts"
import { serviceDb, waitUntil } from "../testing/busHarness.ts"
import * as SessionRevocations from "./SessionRevocations.ts"

// The embedded default: no Redis, so a verifier in another process learns of revocations from auth's events.
const feed: SessionRevocations.RevocationFeed = { topic: "auth.events", type: "auth.session.revoked" }

describe("SessionRevocations.following", () => {
  it.live("without Redis, a session revoked by auth is refused by another process within a second", () =>
    Effect.gen(function* () {
      const auth = yield* serviceDb("t_auth")
      const verifier = yield* serviceDb("t_verifier")
      // auth's outbox (topic auth.events) on a fresh schema.
      const outbox = Context.get(
        yield* Layer.build(Outbox.layer("auth").pipe(Layer.provide(Layer.succeed(Db, auth)))),
        Outbox,
      )
      const bus = Layer.succeed(
        EventBus,
        yield* PgEventBus.make({ pollInterval: "50 millis", schemaOf: () => auth.schema }).pipe(
          Effect.provideService(Db, verifier),
        ),
      )
      const context = yield* Layer.build(
        SessionRevocations.following({ service: "verifier", feed }).pipe(
          Layer.provide(bus),
          Layer.provide(Layer.succeed(Db, verifier)),
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: {} }))),
          Layer.provide(Health.layer),
        ),
      )
      const revocations = yield* Effect.provideContext(Effect.service(SessionRevocations.SessionRevocations), context)
      assert.isFalse(yield* revocations.isRevoked("sid-1"))
      const started = Date.now()
      yield* auth.transaction(
        outbox.publish({
          type: feed.type,
          subject: "user-1",
          data: { sessionId: "sid-1", userId: "user-1", reason: "logout", ttlSeconds: 900 },
        }),
      )
      yield* waitUntil("the revocation to arrive", revocations.isRevoked("sid-1"), "5 seconds")
      assert.isBelow(Date.now() - started, 1_000)
      assert.isFalse(yield* revocations.isRevoked("sid-2"))
    }).pipe(Effect.scoped),
  )
})
