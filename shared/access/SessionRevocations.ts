import { Clock, Config, Context, Deferred, Duration, Effect, Layer, Option, Schema } from "effect"
import { Cache, type CacheError } from "../Cache.ts"
import { EventBus } from "../EventBus.ts"
import type { Health } from "../Health.ts"
import type { ServiceUnavailable } from "../Problem.ts"
import * as Problem from "../Problem.ts"

/** The revocations this process holds in memory: sid → until when (epoch ms). */
export class RevokedInMemory extends Context.Service<
  RevokedInMemory,
  {
    remember(sid: string, untilMs: number): Effect.Effect<void>
    has(sid: string): Effect.Effect<boolean>
  }
>()("shared/SessionRevocations/RevokedInMemory") {}

// Bound of the memory: a million sids ≈ 550 MB (measured: the kernel's cache, effect's Cache, keeps a finished fiber
// per entry), far above what one token lifetime of logouts reaches, so live revocations are not evicted (the least
// recently used go first).
const MAX_IN_MEMORY = 1_000_000

// Each sid with the time its revocation ends (ms) as the value; a later end replaces an earlier one, never the reverse.
const memoryStore = Effect.map(Effect.service(Cache), (cache) =>
  RevokedInMemory.of({
    remember: (sid, untilMs) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        if (untilMs <= now) return
        const known = yield* cache.get(sid)
        if (Option.isSome(known) && Number(known.value) >= untilMs) return
        yield* cache.set(sid, String(untilMs), { ttlSeconds: (untilMs - now) / 1000 })
      }).pipe(Effect.orDie), // memory does not fail
    has: (sid) => Effect.map(cache.get(sid), Option.isSome).pipe(Effect.orDie),
  }),
)

// Redis's shared list of revoked sids.
class SharedList extends Context.Service<SharedList, Cache["Service"]>()("shared/SessionRevocations/SharedList") {}

// Redis's list when `REDIS_URL` is set (over the process's shared connection), else none.
const sharedStore = Effect.map(Config.option(Config.Redacted("REDIS_URL")), (url) =>
  Option.isSome(url)
    ? Option.some(
        Layer.effect(SharedList, Effect.service(Cache)).pipe(Layer.provide(Cache.layerOnShared("revoked-session"))),
      )
    : Option.none(),
)

/**
 * Revoked session ids, shared by auth (which writes them) and every verifier of access tokens (the gateway and the
 * services), so that a logout reaches the edge at once without a database call per request. An entry lives as long
 * as the longest access token of that session could: after that the token is refused as expired anyway.
 *
 * Two stores, asked together: the process's memory (what this process revoked, and with `following` every
 * revocation event the issuer publishes) and, when `REDIS_URL` is set, Redis (one key per revoked sid:
 * `revoked-session:<sid>`, TTL = access-token lifetime). A session is revoked when either says so. When Redis cannot
 * answer, `layerDegrading` and `following` answer from memory alone (logged and counted once per outage), `layer`
 * fails closed (503): it has nothing else to go by.
 */
export class SessionRevocations extends Context.Service<
  SessionRevocations,
  {
    /** Marks sessions revoked for `ttlSeconds` (the access-token lifetime). */
    revoke(sids: ReadonlyArray<string>, ttlSeconds: number): Effect.Effect<void, ServiceUnavailable>
    /** True when the session was revoked; 503 only when Redis cannot answer and this store may not degrade. */
    isRevoked(sid: string): Effect.Effect<boolean, ServiceUnavailable>
  }
>()("shared/SessionRevocations") {
  /**
   * Memory and Redis (when configured); fails closed (503) when Redis cannot answer. For a process that follows no
   * events (a Lambda entry): its memory knows only its own revocations.
   */
  static readonly layer = Layer.unwrap(Effect.map(sharedStore, (shared) => store(shared, false)))

  /**
   * Memory and Redis (when configured); while Redis cannot answer, memory alone answers. For the gateway when it
   * follows no events: the services behind it check every request against the events they follow.
   */
  static readonly layerDegrading = Layer.unwrap(Effect.map(sharedStore, (shared) => store(shared, true)))
}

/** When the memory of a process following the revocation events holds every revocation still in force. */
interface CatchUp {
  /** Done once the subscription has replayed the events published before it started. */
  readonly caughtUp: Deferred.Deferred<void>
  /** How long a request waits for it when nothing else can answer, before a 503. */
  readonly wait: Duration.Input
}

const store = (
  shared: Option.Option<Layer.Layer<SharedList, CacheError | Config.ConfigError, Health>>,
  degrade: boolean,
  catchUp: Option.Option<CatchUp> = Option.none(),
) => {
  const make = Effect.gen(function* () {
    const memory = yield* RevokedInMemory
    const list = yield* Effect.serviceOption(SharedList)
    const unavailable = Problem.unavailable(
      "session revocations unavailable",
      "session state is unavailable, retry later",
    )
    // Redis's outages are logged and counted once by the connection (RedisAvailability); here only the answer.
    const whenRedisFails =
      <A>(answer: Effect.Effect<A>) =>
      (error: CacheError) =>
        degrade ? answer : unavailable(error)

    const revoke = Effect.fn("SessionRevocations.revoke")(function* (sids: ReadonlyArray<string>, ttlSeconds: number) {
      const until = (yield* Clock.currentTimeMillis) + ttlSeconds * 1000
      yield* Effect.forEach(sids, (sid) => memory.remember(sid, until), { discard: true })
      if (Option.isNone(list)) return
      yield* Effect.forEach(sids, (sid) => list.value.set(sid, "1", { ttlSeconds }), {
        concurrency: 8,
        discard: true,
      }).pipe(Effect.catchTag("CacheError", whenRedisFails(Effect.void)))
    })

    // Memory alone may say "not revoked" only once it holds every revocation still in force: at once for a process
    // that follows no events (it knows nothing more to wait for), once caught up for one that does. A restarted
    // verifier without Redis would otherwise pass a session revoked before its start until the replay reached it.
    // Until then a request waits for the replay, at most `wait`, then gets a 503. Chosen over holding the start until
    // caught up (or failing it after a timeout): with Redis answering nothing needs to wait, and a broker away at start
    // would otherwise hold or fail every verifier's start while Redis could answer; without Redis the embedded bus
    // catches up in one poll, so the first requests wait milliseconds.
    const incomplete = Problem.unavailable(
      "session revocations still catching up",
      "session state is unavailable, retry later",
    )
    const memoryAlone = (sid: string) =>
      Option.match(catchUp, {
        onNone: () => Effect.succeed(false),
        onSome: ({ caughtUp, wait }) =>
          Deferred.isDoneUnsafe(caughtUp)
            ? Effect.succeed(false)
            : Deferred.await(caughtUp).pipe(
                Effect.timeoutOption(wait),
                Effect.flatMap(
                  Option.match({
                    onNone: () => incomplete("the revocation events published before the start are not all read yet"),
                    onSome: () => memory.has(sid),
                  }),
                ),
              ),
      })

    const isRevoked = Effect.fn("SessionRevocations.isRevoked")(function* (sid: string) {
      if (yield* memory.has(sid)) return true
      if (Option.isSome(list)) {
        // Redis's answer when it gives one (none while it cannot and this store degrades to memory).
        const shared = yield* list.value.get(sid).pipe(
          Effect.map((found) => Option.some(found._tag === "Some")),
          Effect.catchTag("CacheError", whenRedisFails(Effect.succeed(Option.none<boolean>()))),
        )
        if (Option.isSome(shared)) return shared.value
      }
      return yield* memoryAlone(sid)
    })
    return SessionRevocations.of({ revoke, isRevoked })
  })
  const memory = Layer.effect(RevokedInMemory, memoryStore).pipe(
    Layer.provide(Cache.layerMemory({ prefix: "revoked-session", maxEntries: MAX_IN_MEMORY })),
  )
  const withShared = Option.match(shared, {
    onNone: () => Layer.effect(SessionRevocations, make),
    onSome: (list) => Layer.effect(SessionRevocations, make).pipe(Layer.provide(list)),
  })
  return withShared.pipe(Layer.provideMerge(memory))
}

const Revoked = Schema.Struct({ sessionId: Schema.String, ttlSeconds: Schema.optional(Schema.Int) })
const decodeRevoked = Schema.decodeUnknownEffect(Revoked)

/**
 * Where the issuer of access tokens announces ended sessions: its topic and the event type whose data carries
 * `sessionId` (and `ttlSeconds`). The issuer declares it; every verifier passes it to `following`.
 */
export interface RevocationFeed {
  readonly topic: string
  readonly type: string
}

/**
 * How far back a verifier replays the issuer's revocations when it starts (`following`): a revocation must stay in
 * force as long as an access token of the session could, so the issuer's token lifetime plus its margin is at most
 * this (auth's `ACCESS_TOKEN_TTL_SECONDS` is bounded by it).
 */
export const REVOCATION_REPLAY_SECONDS = 3_600

/**
 * Revocations for a verifier in another process than the issuer (and for the issuer's own instances): memory fed by
 * the issuer's revocation events (`feed`), plus Redis's shared list when `REDIS_URL` is set. Every instance follows
 * every event (a broadcast subscription: no shared consumer group, no inbox), starting with the events of the last
 * `rememberSeconds` (default one hour, above the access-token lifetime), so an instance started while Redis is down
 * still knows the revocations still in force. While Redis cannot answer, memory alone answers: a revocation made
 * meanwhile reaches every verifier through the bus (within the poll interval: about 100 ms embedded). Memory alone
 * answers only once that replay is done: before, a request Redis cannot answer waits for it (at most `catchUpWait`,
 * default 5 s) and is then refused with 503.
 */
export const following = (options: {
  readonly service: string
  readonly feed: RevocationFeed
  readonly defaultTtlSeconds?: number
  readonly rememberSeconds?: number
  readonly catchUpWait?: Duration.Input
}) =>
  Layer.unwrap(
    Effect.gen(function* () {
      // One per build of the layer: a restarted verifier starts again from "not caught up".
      const caughtUp = yield* Deferred.make<void>()
      const subscription = Layer.effectDiscard(
        Effect.gen(function* () {
          const bus = yield* EventBus
          const memory = yield* RevokedInMemory
          yield* bus.subscribe({
            topic: options.feed.topic,
            types: [options.feed.type],
            group: `${options.service.replaceAll("-", "_")}_session_revocations`,
            broadcast: {
              since: Duration.seconds(options.rememberSeconds ?? REVOCATION_REPLAY_SECONDS),
              onCaughtUp: Effect.asVoid(Deferred.succeed(caughtUp, undefined)),
            },
            handler: (event) =>
              Effect.flatMap(decodeRevoked(event.data), (data) =>
                memory.remember(
                  data.sessionId,
                  Date.parse(event.time) + (data.ttlSeconds ?? options.defaultTtlSeconds ?? 900) * 1000,
                ),
              ),
          })
        }),
      )
      const catchUp = { caughtUp, wait: options.catchUpWait ?? "5 seconds" }
      return subscription.pipe(
        Layer.provideMerge(
          Layer.unwrap(Effect.map(sharedStore, (shared) => store(shared, true, Option.some(catchUp)))),
        ),
      )
    }),
  )
