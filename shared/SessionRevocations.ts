import { Context, Effect, Layer } from "effect"
import { Cache } from "./Cache.ts"
import { ServiceUnavailable } from "./Problem.ts"

/**
 * Revoked session ids, shared by auth (which writes them) and every verifier of access tokens (the gateway and the
 * services), so that a logout reaches the edge at once without a database call per request. An entry lives as long
 * as the longest access token of that session could: after that the token is refused as expired anyway.
 *
 * Backed by Redis when `REDIS_URL` is set (one key per revoked sid: `revoked-session:<sid>`, TTL = access-token
 * lifetime), otherwise by the process's memory (the embedded default: only that process sees the revocation).
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
      const unavailable = (error: { readonly message: string }) =>
        Effect.andThen(
          Effect.logError("session revocations unavailable", { error: error.message }),
          Effect.fail(new ServiceUnavailable({ detail: "session state is unavailable, retry later" })),
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
  ).pipe(Layer.provide(Cache.layer({ prefix: "revoked-session" })))
}
