import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import { Conflict, IdempotencyKeyReused, NotFound, ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import { Id, Plan } from "./Model.ts"
import { manifest } from "./module.ts"
import { NewPlan, PlanChanges } from "./Plans.ts"

/** `Idempotency-Key` of a create or a payment: the same key and body within 24 h replays the first answer. */
const idempotencyKey = { "idempotency-key": Schema.optional(Schema.String) }

/** Plans: anyone lists the active ones; administrators create and archive them (a price never changes). */
export class PlansApi extends HttpApiGroup.make("plans")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/billing/plans", {
      query: pageQuery,
      success: Page(Plan),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "Active plans, in the order they were created"),
    HttpApiEndpoint.post("create", "/api/v1/billing/plans", {
      headers: idempotencyKey,
      payload: NewPlan,
      success: Plan.pipe(HttpApiSchema.status(201)),
      error: [Conflict, IdempotencyKeyReused, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("billing.plan.create"))
      .annotate(OpenApi.Summary, "Create a plan (its code unique: 409 otherwise); Idempotency-Key honoured"),
    HttpApiEndpoint.patch("update", "/api/v1/billing/plans/:id", {
      params: { id: Id },
      payload: PlanChanges,
      success: Plan,
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("billing.plan.update"))
      .annotate(OpenApi.Summary, "Rename, describe or archive a plan (`active: false`); its price never changes"),
  )
  .annotate(OpenApi.Description, "Plans: what billing sells, at a price fixed when the plan is made") {}

/** Billing's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class BillingApi extends Contract.make(HttpApi.make("billing").add(PlansApi), manifest) {}
