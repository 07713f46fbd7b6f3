import { randomUUID } from "node:crypto"
import { Context, Effect, Layer, Option, Schedule, Schema } from "effect"
import { Cache } from "../../shared/Cache.ts"
import type { ServiceUnavailable } from "../../shared/Problem.ts"
import * as Problem from "../../shared/Problem.ts"
import { PROBE_MS } from "../../shared/Redis.ts"
import { AssignmentsRepo } from "./AssignmentsRepo.ts"
import { matchingGrant, normalize } from "./Permission.ts"
import type { UserId } from "./Role.ts"

/** How long a user's effective grants are cached (Redis: every instance; memory: this process only). */
export interface AuthorizerOptions {
  readonly ttlSeconds: number
}

/** The answer to one permission check. */
export interface Decision {
  readonly allowed: boolean
  /** The grant that allowed it (`blog.*`, `*` or the permission itself). */
  readonly grant: string | undefined
}

// Cache keys: `generation` holds a random token replaced after every change to a role or an assignment; a user's
// grants live under `grants:<generation>:<userId>`. Replacing the token orphans every cached entry at once, in every
// instance sharing the cache, whatever the number of users a role change concerns.
const GENERATION = "generation"
const grantsKey = (generation: string, userId: string) => `grants:${generation}:${userId}`

const decodeGrants = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Array(Schema.String)))

/**
 * Permission checks over a user's effective grants (the union of their roles' grants), cached. Writers call
 * `invalidate` after their transaction committed; a reader takes the generation before it reads the database, so an
 * entry computed from rows older than a change can only ever sit under a generation that change replaced.
 */
export class Authorizer extends Context.Service<
  Authorizer,
  {
    /** The user's effective grants, sorted, without duplicates (may hold `blog.*` or `*`). */
    grantsOf(userId: UserId): Effect.Effect<ReadonlyArray<string>, ServiceUnavailable>
    /** Whether the user holds a concrete permission, and through which grant. */
    check(userId: UserId, permission: string): Effect.Effect<Decision, ServiceUnavailable>
    /** Several permissions of one user, in order, over one lookup of their grants. */
    checkAll(
      userId: UserId,
      permissions: ReadonlyArray<string>,
    ): Effect.Effect<Array<Decision & { readonly permission: string }>, ServiceUnavailable>
    /**
     * Forgets every cached decision (all instances sharing the cache); never fails. While the cache cannot be
     * written (Redis away: every instance reads the database meanwhile) it is retried in the background until it is,
     * so no decision cached before a change is served once Redis answers again.
     */
    invalidate(): Effect.Effect<void>
  }
>()("authz/Authorizer") {
  /** Checks over the assignments repository and the `Cache` (prefix it `authz`). */
  static readonly layer = (options: AuthorizerOptions) =>
    Layer.effect(
      Authorizer,
      Effect.gen(function* () {
        const cache = yield* Cache
        const repo = yield* AssignmentsRepo

        const load = (userId: UserId) =>
          repo
            .grantsOf(userId)
            .pipe(
              Effect.map(normalize),
              Effect.catchTag(
                "DbError",
                Problem.unavailable("database unavailable", "permissions cannot be checked, retry later"),
              ),
            )

        // The current generation; a missing one (fresh or flushed cache) is started. None: the cache is down.
        const generation = cache.get(GENERATION).pipe(
          Effect.flatMap((current) =>
            Option.isSome(current)
              ? Effect.succeed(current.value)
              : Effect.sync(() => randomUUID()).pipe(Effect.tap((fresh) => cache.set(GENERATION, fresh))),
          ),
          Effect.map(Option.some),
          Effect.catchTag("CacheError", (error) =>
            Effect.as(
              Effect.logWarning("cache unavailable, reading grants from the database", { error: error.message }),
              Option.none<string>(),
            ),
          ),
        )

        const grantsOf = Effect.fn("Authorizer.grantsOf")(function* (userId: UserId) {
          const current = yield* generation
          if (Option.isNone(current)) return yield* load(userId)
          const key = grantsKey(current.value, userId)
          const cached = yield* cache.getOrSet(key, options.ttlSeconds, Effect.map(load(userId), JSON.stringify))
          const grants = decodeGrants(cached)
          if (Option.isSome(grants)) return grants.value
          yield* cache.delete(key).pipe(Effect.ignore)
          return yield* load(userId)
        })

        const check = Effect.fn("Authorizer.check")(function* (userId: UserId, permission: string) {
          const grant = matchingGrant(yield* grantsOf(userId), permission)
          return { allowed: grant !== undefined, grant }
        })

        const checkAll = Effect.fn("Authorizer.checkAll")(function* (
          userId: UserId,
          permissions: ReadonlyArray<string>,
        ) {
          const grants = yield* grantsOf(userId)
          return permissions.map((permission) => {
            const grant = matchingGrant(grants, permission)
            return { permission, allowed: grant !== undefined, grant }
          })
        })

        const scope = yield* Effect.scope
        let retrying = false
        const renew = Effect.suspend(() => cache.set(GENERATION, randomUUID()))
        const retryInBackground = Effect.suspend(() => {
          if (retrying) return Effect.void
          retrying = true
          return renew.pipe(
            Effect.retry(Schedule.spaced(`${PROBE_MS} millis`)),
            Effect.andThen(Effect.logInfo("cached permissions invalidated after the cache came back")),
            Effect.ensuring(Effect.sync(() => (retrying = false))),
            Effect.forkIn(scope),
            Effect.asVoid,
          )
        })
        const invalidate = Effect.fn("Authorizer.invalidate")(function* () {
          yield* renew.pipe(
            Effect.retry({ times: 2 }),
            Effect.catchTag("CacheError", (error) =>
              Effect.logWarning("cached permissions could not be invalidated yet; retrying until the cache answers", {
                error: error.message,
              }).pipe(Effect.andThen(retryInBackground)),
            ),
          )
        })

        return Authorizer.of({ grantsOf, check, checkAll, invalidate })
      }),
    )
}
