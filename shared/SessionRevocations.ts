import { Config, Context, Effect, Layer, Option, Schema } from "effect"
import { Cache } from "./Cache.ts"
import { topicOf } from "./CloudEvent.ts"
import { EventBus } from "./EventBus.ts"
import type { ServiceUnavailable } from "./Problem.ts"
import * as Problem from "./Problem.ts"

/**
 * Revoked session ids, shared by auth (which writes them) and every verifier of access tokens (the gateway and the
 * services), so that a logout reaches the edge at once without a database call per request. An entry lives as long
 * as the longest access token of that session could: after that the token is refused as expired anyway.
 *
 * Backed by Redis when `REDIS_URL` is set (one key per revoked sid: `revoked-session:<sid>`, TTL = access-token
 * lifetime), otherwise by the process's memory; `following` then keeps that memory in step with auth's
 * `auth.session.revoked` events (the embedded default: one instance per function, the bus polled every 100 ms).
 */
export class SessionRevocations extends Context.Service<
  SessionRevocations,
  {
    /** Marks sessions revoked for `ttlSeconds` (the access-token lifetime). */
    revoke(sids: ReadonlyArray<string>, ttlSeconds: number): Effect.Effect<void, ServiceUnavailable>
    /** True when the session was revoked; fails closed (503) when the store cannot answer. */
    isRevoked(sid: string): Effect.Effect<boolean, ServiceUnavailable>
  }
>()("shared/SessionRevocations") {
  /** Revocations over the cache (Redis when `REDIS_URL` is set, else memory). */
  static readonly layer = Layer.effect(
    SessionRevocations,
    Effect.gen(function* () {
      const cache = yield* Cache
      const unavailable = Problem.unavailable(
        "session revocations unavailable",
        "session state is unavailable, retry later",
      )
      const revoke = Effect.fn("SessionRevocations.revoke")(
        function* (sids: ReadonlyArray<string>, ttlSeconds: number) {
          yield* Effect.forEach(sids, (sid) => cache.set(sid, "1", { ttlSeconds }), { concurrency: 8, discard: true })
        },
        Effect.catchTag("CacheError", unavailable),
      )
      const isRevoked = Effect.fn("SessionRevocations.isRevoked")(
        function* (sid: string) {
          return (yield* cache.get(sid))._tag === "Some"
        },
        Effect.catchTag("CacheError", unavailable),
      )
      return SessionRevocations.of({ revoke, isRevoked })
    }),
    // Memory: entries expire on their own; the bound only guards the process (a million sids ≈ 150 MB), far above what
    // one token lifetime of logouts reaches, so live revocations are not evicted.
  ).pipe(Layer.provide(Cache.layer({ prefix: "revoked-session", maxEntries: 1_000_000 })))
}

const Revoked = Schema.Struct({ sessionId: Schema.String, ttlSeconds: Schema.optional(Schema.Int) })
const decodeRevoked = Schema.decodeUnknownEffect(Revoked)

/**
 * Revocations for a verifier in another process than auth: the shared Redis list when `REDIS_URL` is set; otherwise
 * process memory fed by auth's `auth.session.revoked` events (consumer group `<service>_session_revocations`).
 * Without Redis every instance must see every event, so run one instance per function (as `npm start` does).
 */
export const following = (options: { readonly service: string; readonly defaultTtlSeconds?: number }) =>
  Layer.unwrap(
    Effect.map(Config.option(Config.Redacted("REDIS_URL")), (redis) =>
      Option.isSome(redis)
        ? SessionRevocations.layer
        : Layer.effectDiscard(
            Effect.gen(function* () {
              const bus = yield* EventBus
              const revocations = yield* SessionRevocations
              yield* bus.subscribe({
                topic: topicOf("auth"),
                group: `${options.service.replaceAll("-", "_")}_session_revocations`,
                handler: (event) =>
                  event.type !== "auth.session.revoked"
                    ? Effect.void
                    : Effect.flatMap(decodeRevoked(event.data), (data) =>
                        revocations.revoke([data.sessionId], data.ttlSeconds ?? options.defaultTtlSeconds ?? 900),
                      ),
              })
            }),
          ).pipe(Layer.provideMerge(SessionRevocations.layer)),
    ),
  )
