import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import { Conflict, IdempotencyKeyReused, NotFound, ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { Id } from "./Model.ts"
import { TestClock } from "./TestClocks.ts"

/** An RFC 3339 time with its offset (`2026-05-01T00:00:00Z`): anything else is a 400 naming the field. */
const Time = Schema.String.check(
  Schema.makeFilter((text: string) =>
    /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i.test(text) &&
    !Number.isNaN(new Date(text).getTime())
      ? true
      : "Expected an RFC 3339 time such as 2026-05-01T00:00:00Z",
  ),
)

/** A new test clock: frozen at `frozenTime` (default: now). */
export const NewTestClock = Schema.Struct({ frozenTime: Schema.optional(Time) })
/** How far to move a clock: to `to`, after its time. */
export const Advance = Schema.Struct({ to: Time })

/**
 * Test clocks (like Stripe's), for billing.testclock.manage; only when BILLING_TEST_CLOCKS is on (404 otherwise). A
 * subscription created with `testClockId` lives on its clock's time; advancing the clock runs its renewals, retries
 * and trial ends due on the way before answering.
 */
export class TestClocksApi extends HttpApiGroup.make("testClocks")
  .add(
    HttpApiEndpoint.post("create", "/api/v1/billing/test-clocks", {
      headers: { "idempotency-key": Schema.optional(Schema.String) },
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
