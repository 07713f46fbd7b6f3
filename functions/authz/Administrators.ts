import { Context, Effect, Layer } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import * as Problem from "../../shared/Problem.ts"
import { LastAdmin, type ServiceUnavailable } from "../../shared/Problem.ts"
import { AdministratorsRepo } from "./AdministratorsRepo.ts"
import type { UserId } from "./Role.ts"

/**
 * The last-administrator guard: an administrator is a user who holds `*` through a role and whom identity has not
 * reported inactive (disabled or deleted). No change may take the platform from one administrator to none. Every
 * change that could (taking a role from a user, deleting a role, changing its grants, identity's deactivations)
 * runs in one transaction under one advisory lock, so two concurrent changes are judged one after the other.
 */
export class Administrators extends Context.Service<
  Administrators,
  {
    /**
     * Runs `change` in a transaction (or the caller's) under the guard's lock and fails it with `LastAdmin` (rolled
     * back) when there were administrators before it and none after.
     */
    guard<A, E, R>(change: Effect.Effect<A, E, R>): Effect.Effect<A, E | LastAdmin | DbError, R>
    /**
     * Records identity's report that a user is (in)active as of `version` (older reports are ignored); a deactivation
     * of the last administrator is refused with `LastAdmin` and not recorded.
     */
    setActive(userId: UserId, active: boolean, version: number): Effect.Effect<void, LastAdmin | ServiceUnavailable>
  }
>()("authz/Administrators") {
  /** The guard over its repository and the Db (transactions). */
  static readonly layer = Layer.effect(
    Administrators,
    Effect.gen(function* () {
      const db = yield* Db
      const repo = yield* AdministratorsRepo

      const guard = <A, E, R>(change: Effect.Effect<A, E, R>): Effect.Effect<A, E | LastAdmin | DbError, R> =>
        db
          .transaction(
            Effect.gen(function* () {
              yield* repo.lock()
              const before = yield* repo.countActive()
              const result = yield* change
              if (before > 0 && (yield* repo.countActive()) === 0) {
                return yield* new LastAdmin({
                  detail:
                    "this would leave no active administrator (a user holding *): give another active user the admin role first",
                })
              }
              return result
            }),
          )
          .pipe(Effect.withSpan("Administrators.guard"))

      const setActive = Effect.fn("Administrators.setActive")(function* (
        userId: UserId,
        active: boolean,
        version: number,
      ) {
        yield* guard(repo.report(userId, active, version)).pipe(Effect.catchTag("DbError", unavailable))
      })

      return Administrators.of({ guard, setActive })
    }),
  )
}

const unavailable = Problem.unavailable("database unavailable", "the role store is unavailable, retry later")
