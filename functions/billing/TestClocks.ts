// Test clocks (like Stripe's): a clock's frozen time is the "now" of the subscriptions created on it, and advancing it
// runs what falls due up to the new time — trial ends, renewals, payment retries — in time order, one instant after
// another, through the same engine code as wall time (Lifecycle's sweeps, restricted to the clock). Only served when
// BILLING_TEST_CLOCKS is on (the API answers 404 otherwise).
import { Context, Effect, Layer, Schema } from "effect"
import { Db, DbError } from "../../shared/Db.ts"
import { NotFound, type ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { unavailable } from "./Model.ts"
import { drain } from "./Renewals.ts"

/** A test clock as the API shows it. */
export const TestClock = Schema.Struct({ id: Schema.String, frozenTime: Schema.String })
export type TestClock = typeof TestClock.Type

/** How far one advance may go, and how many instants with work it may run through. */
export const MAX_ADVANCE_DAYS = 2 * 366
export const MAX_STEPS = 10_000

const DAY_MS = 86_400_000

const invalid = (path: string, message: string) =>
  new ValidationFailed({ detail: "The request does not match the API contract", errors: [{ path, message }] })

const toClock = (row: { readonly id: string; readonly frozen_time: Date }): TestClock => ({
  id: row.id,
  frozenTime: row.frozen_time.toISOString(),
})

/** Test clocks: made at a time, advanced only forward. */
export class TestClocks extends Context.Service<
  TestClocks,
  {
    /** A clock frozen at `frozenTime` (default: now), made by `createdBy`. */
    create(createdBy: string, frozenTime?: Date): Effect.Effect<TestClock, ServiceUnavailable>
    /**
     * Moves a clock forward to `to` (after its time, at most MAX_ADVANCE_DAYS ahead), running every renewal, trial end
     * and retry of its subscriptions due on the way, at the time each falls due, before answering. One advance of a
     * clock at a time (others wait).
     */
    advance(clockId: string, to: Date): Effect.Effect<TestClock, NotFound | ValidationFailed | ServiceUnavailable>
  }
>()("billing/TestClocks") {
  static readonly layer = Layer.effect(
    TestClocks,
    Effect.gen(function* () {
      const db = yield* Db
      const lifecycle = yield* Lifecycle
      const s = db.schema

      const create = (createdBy: string, frozenTime?: Date) =>
        Effect.gen(function* () {
          const time = frozenTime ?? (yield* lifecycle.nowFor(null))
          const rows = yield* db.query<{ id: string; frozen_time: Date }>(
            `INSERT INTO ${s}.test_clocks (frozen_time, created_by) VALUES ($1, $2) RETURNING id, frozen_time`,
            [time, createdBy],
          )
          return toClock(rows[0]!)
        }).pipe(
          Effect.catchIf(
            (error): error is DbError => error instanceof DbError,
            (error) => unavailable(error),
          ),
        )

      /** The earliest instant after which something of the clock's subscriptions is due (none: nothing up to `to`). */
      const nextDue = (clockId: string, to: Date) =>
        Effect.map(
          db.query<{ at: Date | null }>(
            `SELECT least(
               (SELECT min(current_period_end) FROM ${s}.subscriptions
                 WHERE test_clock_id = $1 AND status IN ('trialing', 'active', 'past_due')),
               (SELECT min(i.next_attempt_at) FROM ${s}.invoices i JOIN ${s}.subscriptions sub ON sub.id = i.subscription_id
                 WHERE sub.test_clock_id = $1 AND i.status = 'open' AND i.next_attempt_at IS NOT NULL)
             ) AS at`,
            [clockId],
          ),
          (rows) => {
            const at = rows[0]?.at ?? null
            return at !== null && at.getTime() <= to.getTime() ? at : undefined
          },
        )

      const setTime = (clockId: string, time: Date) =>
        db.query(`UPDATE ${s}.test_clocks SET frozen_time = $2 WHERE id = $1`, [clockId, time])

      const advance = (clockId: string, to: Date) =>
        Effect.gen(function* () {
          if (Number.isNaN(to.getTime())) return yield* invalid("to", "must be an RFC 3339 time")
          // One advance of a clock at a time: a session lock on the clock, held on its own connection meanwhile.
          return yield* db.withConnection((client) =>
            Effect.acquireUseRelease(
              Effect.tryPromise({
                try: () => client.query("SELECT pg_advisory_lock(hashtext($1))", [`billing-test-clock:${clockId}`]),
                catch: (cause) => new DbError({ message: "test clock lock failed", cause }),
              }),
              () =>
                Effect.gen(function* () {
                  const rows = yield* db.query<{ id: string; frozen_time: Date }>(
                    `SELECT id, frozen_time FROM ${s}.test_clocks WHERE id = $1`,
                    [clockId],
                  )
                  const clock = rows[0]
                  if (clock === undefined) return yield* new NotFound({ detail: "no such test clock" })
                  if (to.getTime() <= clock.frozen_time.getTime()) {
                    return yield* invalid("to", `must be after the clock's time (${clock.frozen_time.toISOString()})`)
                  }
                  if (to.getTime() - clock.frozen_time.getTime() > MAX_ADVANCE_DAYS * DAY_MS) {
                    return yield* invalid("to", `may be at most ${MAX_ADVANCE_DAYS} days after the clock's time`)
                  }
                  // Instant after instant: what is due at each runs at that time, so a renewal's invoice is retried on
                  // the schedule from its own failure, and a later period sees the earlier one's outcome.
                  for (let steps = 0; ; steps++) {
                    const at = yield* nextDue(clockId, to)
                    if (at === undefined) break
                    if (steps === MAX_STEPS) {
                      return yield* invalid(
                        "to",
                        `runs more than ${MAX_STEPS} steps of billing work: advance less at once`,
                      )
                    }
                    const now = at.getTime() > clock.frozen_time.getTime() ? at : clock.frozen_time
                    yield* setTime(clockId, now)
                    yield* Effect.provideService(drain({ now, clockId }), Lifecycle, lifecycle)
                  }
                  yield* setTime(clockId, to)
                  return { id: clockId, frozenTime: to.toISOString() }
                }),
              () =>
                Effect.promise(() =>
                  client.query("SELECT pg_advisory_unlock(hashtext($1))", [`billing-test-clock:${clockId}`]),
                ),
            ),
          )
        }).pipe(
          Effect.catchIf(
            (error): error is DbError => error instanceof DbError,
            (error) => unavailable(error),
          ),
          Effect.withSpan("TestClocks.advance"),
        )

      return TestClocks.of({ create, advance })
    }),
  )
}
