import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import {
  Conflict,
  Forbidden,
  IdempotencyKeyReused,
  NotFound,
  ServiceUnavailable,
  ValidationFailed,
} from "../../shared/Problem.ts"
import { Id, Invoice, InvoiceStatus, Plan, Subscription, SubscriptionStatus } from "./Model.ts"
import { manifest } from "./module.ts"
import { NewPaymentMethod, PaymentDeclined, PaymentMethod } from "./PaymentMethods.ts"
import { PlanChangeApi } from "./PlanChangeApi.ts"
import { NewPlan, PlanChanges } from "./Plans.ts"
import { TestClocksApi } from "./TestClocksApi.ts"

/** `Idempotency-Key` of a create or a payment: the same key and body within 24 h replays the first answer. */

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
      headers: Contract.idempotencyKeyHeader,
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

/** The caller's payment method: saved at the provider from a client-side token. */
export class PaymentMethodApi extends HttpApiGroup.make("paymentMethod")
  .add(
    HttpApiEndpoint.put("save", "/api/v1/billing/payment-method", {
      payload: NewPaymentMethod,
      success: PaymentMethod,
      error: [ValidationFailed, PaymentDeclined, ServiceUnavailable],
    })
      // Few a minute per customer: a route that tries cards is what card testing (fraudsters checking stolen numbers
      // against a provider) looks for.
      .pipe(Route.signedIn({ userPerMinute: 10 }))
      .annotate(
        OpenApi.Summary,
        "Save the caller's payment method from a provider token (replaces any earlier one); 402 when declined",
      ),
  )
  .annotate(OpenApi.Description, "The caller's payment method, which billing charges for their invoices") {}

/** What a customer sends to subscribe: an active plan, and (with billing.testclock.manage) a test clock to live on. */
export const NewSubscription = Schema.Struct({ planId: Id, testClockId: Schema.optional(Id) })

/** When a subscription ends: at the end of its current period (the default), or now. */
export const Cancellation = Schema.Struct({ atPeriodEnd: Schema.optional(Schema.Boolean) })

/** Subscriptions: the caller's own, or everyone's with billing.subscription.read.any. */
export class SubscriptionsApi extends HttpApiGroup.make("subscriptions")
  .add(
    HttpApiEndpoint.get("mine", "/api/v1/billing/subscriptions/me", {
      query: { ...pageQuery, status: Schema.optional(SubscriptionStatus) },
      success: Page(Subscription),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "The caller's subscriptions, newest first (`?status=`)"),
    HttpApiEndpoint.get("list", "/api/v1/billing/subscriptions", {
      query: { ...pageQuery, customerId: Schema.optional(Id), status: Schema.optional(SubscriptionStatus) },
      success: Page(Subscription),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("billing.subscription.read.any"))
      .annotate(OpenApi.Summary, "Everyone's subscriptions, newest first (`?customerId=&status=`)"),
    HttpApiEndpoint.get("get", "/api/v1/billing/subscriptions/:id", {
      params: { id: Id },
      success: Subscription,
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      // Signed in: the caller's own, or anyone's with billing.subscription.read.any; anyone else's is a 404.
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "A subscription (one's own, or with billing.subscription.read.any)"),
    HttpApiEndpoint.post("create", "/api/v1/billing/subscriptions", {
      headers: Contract.idempotencyKeyHeader,
      payload: NewSubscription,
      success: Subscription.pipe(HttpApiSchema.status(201)),
      error: [NotFound, Forbidden, Conflict, IdempotencyKeyReused, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        "Subscribe the caller to an active plan; the first invoice is paid at once unless trialing (declined: incomplete)",
      ),
    HttpApiEndpoint.post("cancel", "/api/v1/billing/subscriptions/:id/cancel", {
      params: { id: Id },
      // No body at all (read as null) cancels at the period's end, as `{}` does.
      payload: [Cancellation, Schema.Null],
      success: Subscription,
      error: [NotFound, Forbidden, Conflict, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        "Cancel at the period's end (default) or now (one's own, or with billing.subscription.update.any)",
      ),
  )
  .annotate(OpenApi.Description, "Subscriptions to plans") {}

/** Invoices: the caller's own, or everyone's with billing.invoice.read.any. */
export class InvoicesApi extends HttpApiGroup.make("invoices")
  .add(
    HttpApiEndpoint.get("mine", "/api/v1/billing/invoices/me", {
      query: { ...pageQuery, status: Schema.optional(InvoiceStatus) },
      success: Page(Invoice),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "The caller's invoices, newest first (`?status=`)"),
    HttpApiEndpoint.get("list", "/api/v1/billing/invoices", {
      query: { ...pageQuery, customerId: Schema.optional(Id), status: Schema.optional(InvoiceStatus) },
      success: Page(Invoice),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("billing.invoice.read.any"))
      .annotate(OpenApi.Summary, "Everyone's invoices, newest first (`?customerId=&status=`)"),
    HttpApiEndpoint.get("get", "/api/v1/billing/invoices/:id", {
      params: { id: Id },
      success: Invoice,
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      // Signed in: the caller's own, or anyone's with billing.invoice.read.any; anyone else's is a 404.
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "An invoice (one's own, or with billing.invoice.read.any)"),
    HttpApiEndpoint.post("pay", "/api/v1/billing/invoices/:id/pay", {
      params: { id: Id },
      headers: Contract.idempotencyKeyHeader,
      success: Invoice,
      error: [NotFound, Forbidden, Conflict, IdempotencyKeyReused, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        "A payment attempt now (one's own, or with billing.invoice.update.any); Idempotency-Key honoured",
      ),
    HttpApiEndpoint.post("void", "/api/v1/billing/invoices/:id/void", {
      params: { id: Id },
      success: Invoice,
      error: [NotFound, Conflict, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("billing.invoice.update.any"))
      .annotate(OpenApi.Summary, "Void an open invoice"),
  )
  .annotate(OpenApi.Description, "Invoices: one per subscription and period, numbered gaplessly per year") {}

/** Billing's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class BillingApi extends Contract.make(
  HttpApi.make("billing")
    .add(PlansApi)
    .add(PaymentMethodApi)
    .add(SubscriptionsApi)
    .add(InvoicesApi)
    .add(PlanChangeApi)
    .add(TestClocksApi),
  manifest,
) {}
