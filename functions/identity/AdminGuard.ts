import { Context, Effect, Layer } from "effect"
import { AuthzClient } from "../../shared/access/Permissions.ts"
import type { LastAdmin, ServiceUnavailable } from "../../shared/Problem.ts"
import * as Problem from "../../shared/Problem.ts"
import type { UserId } from "./User.ts"

/**
 * The port identity needs from authz to keep one administrator: authz knows who holds `*`, identity who is active.
 * `version` is the account's status version once the change is written (`users.status_version`).
 */
export class AdminGuard extends Context.Service<
  AdminGuard,
  {
    /** Before an account stops being active: authz counts it out, or refuses (LastAdmin) if it is the last administrator. */
    retire(userId: UserId, version: number): Effect.Effect<void, LastAdmin | ServiceUnavailable>
    /**
     * After an account became active again: authz counts it in. Never fails (logged): until a later report arrives authz
     * counts the account out, which can only refuse more, never allow more (enabling it again repeats the report).
     */
    reinstate(userId: UserId, version: number): Effect.Effect<void>
  }
>()("identity/AdminGuard") {
  /**
   * The guard over authz's `SetUserActive` (gRPC, this function's service identity), on the function's `AuthzClient`:
   * the channel its permission checks use, opened on first use.
   */
  static readonly layer = Layer.effect(
    AdminGuard,
    Effect.gen(function* () {
      const { call } = yield* AuthzClient

      // A report carries its version: sending it twice changes nothing.
      const report = (userId: UserId, active: boolean, version: number) =>
        call("setUserActive", { userId, active, version }, { idempotent: true })

      const retire = Effect.fn("AdminGuard.retire")(function* (userId: UserId, version: number) {
        yield* report(userId, false, version).pipe(
          Effect.catch(
            (error): Effect.Effect<never, LastAdmin | ServiceUnavailable> =>
              error._tag === "LastAdmin" ? Effect.fail(error) : unavailable(error),
          ),
        )
      })

      const reinstate = Effect.fn("AdminGuard.reinstate")(function* (userId: UserId, version: number) {
        yield* report(userId, true, version).pipe(
          Effect.catch((error) =>
            Effect.logWarning("authz did not hear that an account is active again", { userId, error: error.message }),
          ),
        )
      })

      return AdminGuard.of({ retire, reinstate })
    }),
  )

  /** No authz (unit tests of identity alone): every change is allowed. */
  static readonly layerTest = Layer.succeed(
    AdminGuard,
    AdminGuard.of({ retire: () => Effect.void, reinstate: () => Effect.void }),
  )
}

// Authz not answering (or answering what it should not): the account's status stays as it is, the log says why.
const unavailable = Problem.unavailable(
  "authz unavailable",
  "administrators cannot be checked, the account's status is unchanged; retry later",
)
