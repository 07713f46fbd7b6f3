import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import {
  Conflict,
  Forbidden,
  IdempotencyKeyReused,
  NotFound,
  ServiceUnavailable,
  ValidationFailed,
} from "../../shared/Problem.ts"
import { Id } from "./Model.ts"
import { PlanChangePreview, PlanChangeRequest, PlanChangeResult } from "./PlanChange.ts"

const errors = [NotFound, Forbidden, Conflict, ValidationFailed, ServiceUnavailable]

/**
 * A subscription's plan change, prorated by the second (PlanChange.ts): the preview and the change answer from the
 * same decision, so the change writes what the preview showed. Signed in; that the caller may act on the subscription
 * (its customer, or billing.subscription.update.any) is the domain's check.
 */
export class PlanChangeApi extends HttpApiGroup.make("planChange")
  .add(
    HttpApiEndpoint.get("preview", "/api/v1/billing/subscriptions/:id/change-plan/preview", {
      params: { id: Id },
      query: { planId: Id },
      success: PlanChangePreview,
      error: errors,
    })
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        "What changing to `?planId=` now would charge (positive) or credit (negative), line by line; nothing is written",
      ),
    HttpApiEndpoint.post("change", "/api/v1/billing/subscriptions/:id/change-plan", {
      params: { id: Id },
      headers: Contract.idempotencyKeyHeader,
      payload: PlanChangeRequest,
      success: PlanChangeResult,
      error: [...errors, IdempotencyKeyReused],
    })
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        "Change plans now, prorated by the second: the lines (as previewed) go to the next invoice; another interval resets the cycle and invoices the new period now; Idempotency-Key honoured",
      ),
  )
  .annotate(OpenApi.Description, "Plan changes of subscriptions, previewed and made alike") {}
