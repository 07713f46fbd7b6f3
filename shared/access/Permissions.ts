import { Context, Effect, Layer } from "effect"
import type { AuthzServiceService } from "../../proto/gen/authz/v1/authz.ts"
import { makeLocal } from "../Cache.ts"
import { EventBus } from "../EventBus.ts"
import type { GrpcClient } from "../GrpcClient.ts"
import * as GrpcDeferred from "../GrpcDeferred.ts"
import type { ServiceUnavailable } from "../Problem.ts"
import * as Problem from "../Problem.ts"

/** How permission checks reach authz and how long an answer is reused. */
export interface PermissionsOptions {
  /** Authz's gRPC `host:port`. */
  readonly address: string
  /** How long an answer is reused (0 = ask every time); authz's change events clear it sooner. */
  readonly ttlMs: number
  /** Bound on cached answers (default 100 000); past it the least recently used go first. */
  readonly maxEntries?: number
}

/**
 * A function's gRPC channel to authz (`AuthzService`, with this function's service identity, 2 s per attempt): the
 * contract and grpc-js are imported, and the channel opened, on the first call; it closes with the layer. Whatever in
 * one function calls authz (its permission checks, identity's last-administrator guard) shares the one channel.
 */
export class AuthzClient extends Context.Service<
  AuthzClient,
  { readonly call: GrpcClient<AuthzServiceService>["call"] }
>()("shared/AuthzClient") {
  static readonly layer = (options: { readonly address: string }) =>
    Layer.effect(
      AuthzClient,
      Effect.map(
        GrpcDeferred.lazyClient(
          () => import("../../proto/gen/authz/v1/authz.ts").then((proto) => proto.AuthzServiceClient),
          { address: options.address, timeoutMs: 2_000 },
        ),
        (call) => AuthzClient.of({ call }),
      ),
    )
}

/** Where the permission checker announces changes that may turn an answer: its topic and those event types. */
export interface PermissionChangeFeed {
  readonly topic: string
  readonly types: ReadonlyArray<string>
}

/**
 * Permission checks of signed-in callers: the gateway's early rejection and every function's own enforcement of its
 * routes (`RouteGuard`). Through authz's `Authorize` (gRPC, with this function's service identity) with a short local
 * cache (the kernel's `LocalCache`): one answer per (user, permission) reused for at most `ttlMs` (≤ 1 s) from when it
 * was asked, concurrent misses of one key share one call, and `invalidate` (fed by authz's role and assignment events,
 * see `following`) drops it all at once. authz itself checks locally (`Permissions.local`).
 */
export class Permissions extends Context.Service<
  Permissions,
  {
    /** Whether the user holds the permission; ServiceUnavailable when authz cannot answer (fail closed). */
    check(userId: string, permission: string): Effect.Effect<boolean, ServiceUnavailable>
    /**
     * The cached answer of `check`, without a fiber: undefined when nothing is cached (then `check`). For the
     * gateway's hot path; the cache and its invalidation are `check`'s.
     */
    checkNow(userId: string, permission: string): boolean | undefined
    /** Forgets every cached answer (a role or an assignment changed). */
    readonly invalidate: Effect.Effect<void>
  }
>()("shared/Permissions") {
  /** Checks answered by a local function (authz checks its own routes against its own database). */
  static readonly local = (check: (userId: string, permission: string) => Effect.Effect<boolean, ServiceUnavailable>) =>
    Layer.succeed(Permissions, Permissions.of({ check, checkNow: () => undefined, invalidate: Effect.void }))

  /**
   * Clears the cache on every change event of `changes` (authz declares them), consuming its topic in the group
   * `<service>_permission_cache`. The TTL is what bounds staleness ("within 1 s") when several instances share the group.
   */
  static readonly following = (service: string, changes: PermissionChangeFeed) =>
    Layer.effectDiscard(
      Effect.gen(function* () {
        const bus = yield* EventBus
        const permissions = yield* Permissions
        yield* bus.subscribe({
          topic: changes.topic,
          types: changes.types,
          group: `${service}_permission_cache`,
          handler: () => permissions.invalidate,
        })
      }),
    )

  /** Checks over a gRPC channel to authz of their own, opened on the first check and closed with the layer. */
  static readonly layer = (options: PermissionsOptions) =>
    Permissions.layerOn(options).pipe(Layer.provide(AuthzClient.layer({ address: options.address })))

  /** Checks over the function's `AuthzClient`: a channel to authz shared with its other calls to authz. */
  static readonly layerOn = (options: Omit<PermissionsOptions, "address">) =>
    Layer.effect(
      Permissions,
      Effect.gen(function* () {
        const { call } = yield* AuthzClient

        const ask = (userId: string, permission: string) =>
          call("authorize", { userId, permission }, { idempotent: true }).pipe(
            Effect.map((response) => response.allowed),
            Effect.catch((error) =>
              // A malformed user id or permission: not allowed, whatever authz thinks of it.
              error._tag === "ValidationFailed"
                ? Effect.succeed(false)
                : Problem.unavailable("authz unavailable", "permissions cannot be checked, retry later")(error),
            ),
          )

        // Keyed by both strings exactly (JSON): no user id and permission can name another pair's answer. An answer
        // asked before an invalidation answers its waiting callers but is not kept after it.
        const answers = yield* makeLocal({
          capacity: options.maxEntries ?? 100_000,
          lookup: (key: string) => {
            const [userId, permission] = JSON.parse(key) as [string, string]
            return ask(userId, permission)
          },
          expiresAt: (_allowed, _key, askedAt) => askedAt + options.ttlMs,
          // The gateway's hot path reads answers with `checkNow`: a user's busy permission is asked again before it
          // expires, instead of every request missing while the new answer comes.
          refreshAhead: true,
        })

        // No span of its own: a cached answer is most requests; a call to authz has its gRPC client span.
        const check = (userId: string, permission: string) =>
          options.ttlMs <= 0 ? ask(userId, permission) : answers.get(JSON.stringify([userId, permission]))

        const checkNow = (userId: string, permission: string) =>
          options.ttlMs <= 0 ? undefined : answers.peekNow(JSON.stringify([userId, permission]))

        const invalidate = answers.invalidateAll
        return Permissions.of({ check, checkNow, invalidate })
      }),
    )
}
