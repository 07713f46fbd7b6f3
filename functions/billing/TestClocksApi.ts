import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { DateTime } from "../../shared/DateTime.ts"
import { Conflict, IdempotencyKeyReused, NotFound, ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { Id } from "./Model.ts"
import { TestClock } from "./TestClocks.ts"

/** A new test clock: frozen at `frozenTime` (default: now). */
export const NewTestClock = Schema.Struct({ frozenTime: Schema.optional(DateTime) })
/** How far to move a clock: to `to`, after its time. */
export const Advance = Schema.Struct({ to: DateTime })

/**
 * Test clocks (like Stripe's), for billing.testclock.manage; only when BILLING_TEST_CLOCKS is on (404 otherwise). A
 * subscription created with `testClockId` lives on its clock's time; advancing the clock runs its renewals, retries
 * and trial ends due on the way before answering.
 */
export class TestClocksApi extends HttpApiGroup.make("testClocks")
  .add(
    HttpApiEndpoint.post("create", "/api/v1/billing/test-clocks", {
      headers: Contract.idempotencyKeyHeader,
      payload: NewTestClock,
      success: TestClock.pipe(HttpApiSchema.status(201)),
      error: [NotFound, Conflict, IdempotencyKeyReused, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("billing.testclock.manage"))
      .annotate(OpenApi.Summary, "Create a test clock frozen at `frozenTime` (default now); Idempotency-Key honoured"),
    HttpApiEndpoint.post("advance", "/api/v1/billing/test-clocks/:id/advance", {
      params: { id: Id },
      payload: Advance,
      success: TestClock,
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("billing.testclock.manage"))
      .annotate(
        OpenApi.Summary,
        "Move a test clock forward to `to` (at most two years); the renewals, retries and trial ends of its subscriptions due on the way run first, in time order",
      ),
  )
  .annotate(OpenApi.Description, "Test clocks: simulated time for subscriptions (off in production)") {}
