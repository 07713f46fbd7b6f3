import { Context, Effect, Layer } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import type { UserId } from "./Role.ts"

/** SQL access to what the last-administrator guard reads: holders of `*` and identity's reports of user status. */
export class AdministratorsRepo extends Context.Service<
  AdministratorsRepo,
  {
    /** Takes the guard's advisory lock until the current transaction ends (one guarded change at a time). */
    lock(): Effect.Effect<void, DbError>
    /** How many users hold `*` through a role and are not reported inactive by identity. */
    countActive(): Effect.Effect<number, DbError>
    /**
     * Keeps identity's report unless a later one is kept: a report with a higher version wins; at an equal version a
     * reactivation (done in identity) wins over a deactivation (about to be done).
     */
    report(userId: UserId, active: boolean, version: number): Effect.Effect<void, DbError>
  }
>()("authz/AdministratorsRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    AdministratorsRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const lock = Effect.fn("AdministratorsRepo.lock")(function* () {
        // Keyed by schema: deployments (and tests) on other schemas of one database do not wait for each other.
        yield* db.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`${db.schema}.administrators`])
      })
      const countActive = Effect.fn("AdministratorsRepo.countActive")(function* () {
        const rows = yield* db.query<{ n: number }>(
          `SELECT count(DISTINCT ur.user_id)::int AS n
           FROM ${db.schema}.user_roles ur
           JOIN ${db.schema}.roles r ON r.id = ur.role_id
           LEFT JOIN ${db.schema}.user_states s ON s.user_id = ur.user_id
           WHERE '*' = ANY (r.permissions) AND coalesce(s.active, true)`,
        )
        return rows[0]?.n ?? 0
      })
      const report = Effect.fn("AdministratorsRepo.report")(function* (
        userId: UserId,
        active: boolean,
        version: number,
      ) {
        yield* db.query(
          `INSERT INTO ${db.schema}.user_states (user_id, active, version) VALUES ($1, $2, $3)
           ON CONFLICT (user_id) DO UPDATE
             SET active = EXCLUDED.active, version = EXCLUDED.version, updated_at = now()
             WHERE user_states.version < EXCLUDED.version
                OR (user_states.version = EXCLUDED.version AND EXCLUDED.active)`,
          [userId, active, version],
        )
      })
      return AdministratorsRepo.of({ lock, countActive, report })
    }),
  )
}
