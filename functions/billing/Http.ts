import { Effect, Layer, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { DbError } from "../../shared/Db.ts"
import * as Idempotency from "../../shared/Idempotency.ts"
import { Forbidden, NotFound } from "../../shared/Problem.ts"
import { validationProblems } from "../../shared/Server.ts"
import { BillingApi } from "./Api.ts"
import { BillingSettings } from "./Config.ts"
import { Lifecycle } from "./Lifecycle.ts"
import { Invoice, Plan, Subscription, unavailable } from "./Model.ts"
import { PaymentMethods } from "./PaymentMethods.ts"
import { PlanChangeHttp } from "./PlanChangeHttp.ts"
import { Plans } from "./Plans.ts"
import { Reads } from "./Reads.ts"
import { TestClocksHttp } from "./TestClocksHttp.ts"

/** Who may put a subscription on a test clock. */
const TEST_CLOCKS = "billing.testclock.manage"

/** The signed-in caller's user id. */
const caller = Effect.map(Effect.service(CurrentUser), (user) => user.userId)

/**
 * Runs a create or a payment once per caller and `Idempotency-Key` (none: at once), its answer kept as `schema`:
 * the work and the kept answer commit together.
 */
const once = <A, I, E, R>(
  idempotency: Idempotency.Idempotency["Service"],
  headers: { readonly "idempotency-key"?: string | undefined },
  request: unknown,
  schema: Schema.Codec<A, I>,
  work: Effect.Effect<A, E, R>,
) =>
  Effect.gen(function* () {
    const userId = yield* caller
    const key = yield* Idempotency.keyOf(headers)
    return yield* idempotency.once({ caller: userId, key, request }, schema, work).pipe(
      Effect.catchIf(
        (error): error is DbError => error instanceof DbError,
        (error: DbError) => unavailable(error),
      ),
      // An answer kept under the key that no longer reads as what it was: a defect, not the client's fault.
      Effect.catchIf(Schema.isSchemaError, (error) => Effect.die(error)),
    )
  })

/** Handlers of the plans. */
export const PlansHttp = HttpApiBuilder.group(
  BillingApi,
  "plans",
  Effect.fn(function* (handlers) {
    const plans = yield* Plans
    const idempotency = yield* Idempotency.Idempotency
    return handlers
      .handle("list", ({ query }) => plans.listActive(query))
      .handle("create", ({ headers, payload }) =>
        once(idempotency, headers, { route: "plans.create", payload }, Plan, plans.create(payload)),
      )
      .handle("update", ({ params, payload }) => plans.update(params.id, payload))
  }),
)

/** Handler of the caller's payment method. */
export const PaymentMethodHttp = HttpApiBuilder.group(
  BillingApi,
  "paymentMethod",
  Effect.fn(function* (handlers) {
    const methods = yield* PaymentMethods
    return handlers.handle("save", ({ payload }) =>
      Effect.flatMap(caller, (userId) => methods.save(userId, payload.token)),
    )
  }),
)

// The Permissions the app is built with (a test's stand-in or authz), for the ownership rules asked per call.
const withPermissions = Effect.map(
  Effect.service(Permissions),
  (permissions) =>
    <A, E>(effect: Effect.Effect<A, E, Permissions>) =>
      Effect.provideService(effect, Permissions, permissions),
)

/** Handlers of the subscriptions: reads with their ownership rule, writes through the engine (Lifecycle.ts). */
export const SubscriptionsHttp = HttpApiBuilder.group(
  BillingApi,
  "subscriptions",
  Effect.fn(function* (handlers) {
    const reads = yield* Reads
    const lifecycle = yield* Lifecycle
    const idempotency = yield* Idempotency.Idempotency
    const settings = yield* BillingSettings
    const permissions = yield* Permissions
    const provide = yield* withPermissions
    return handlers
      .handle("create", ({ headers, payload }) =>
        Effect.gen(function* () {
          const userId = yield* caller
          if (payload.testClockId !== undefined) {
            // A subscription on a frozen clock is never renewed on wall time: only who manages clocks may put one there.
            if (!settings.testClocks) return yield* new NotFound({ detail: "test clocks are off (testClockId)" })
            if (!(yield* permissions.check(userId, TEST_CLOCKS))) {
              return yield* new Forbidden({ detail: `a subscription on a test clock needs ${TEST_CLOCKS}` })
            }
          }
          const key = yield* Idempotency.keyOf(headers)
          const subscription = yield* idempotency
            .claimed(
              { caller: userId, key, request: { route: "subscriptions.create", payload } },
              Subscription,
              Effect.map(
                lifecycle.subscribe({ customerId: userId, planId: payload.planId, testClockId: payload.testClockId }),
                (made) => made.subscription,
              ),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          return HttpServerResponse.jsonUnsafe(subscription, {
            status: 201,
            headers: { location: `/api/v1/billing/subscriptions/${subscription.id}` },
          })
        }),
      )
      .handle("cancel", ({ params, payload }) =>
        Effect.gen(function* () {
          const userId = yield* caller
          yield* provide(reads.authorize("subscription", userId, params.id, "billing.subscription.update.any"))
          return yield* lifecycle.cancel(params.id, { atPeriodEnd: payload?.atPeriodEnd ?? true })
        }),
      )
      .handle("mine", ({ query }) =>
        Effect.flatMap(caller, (userId) => reads.subscriptions({ ...query, customerId: userId })),
      )
      .handle("list", ({ query }) => reads.subscriptions(query))
      .handle("get", ({ params }) => Effect.flatMap(caller, (userId) => provide(reads.subscription(userId, params.id))))
  }),
)

/** Handlers of the invoices: reads with their ownership rule, payments and voiding through the engine. */
export const InvoicesHttp = HttpApiBuilder.group(
  BillingApi,
  "invoices",
  Effect.fn(function* (handlers) {
    const reads = yield* Reads
    const lifecycle = yield* Lifecycle
    const idempotency = yield* Idempotency.Idempotency
    const provide = yield* withPermissions
    return handlers
      .handle("pay", ({ params, headers }) =>
        Effect.gen(function* () {
          const userId = yield* caller
          yield* provide(reads.authorize("invoice", userId, params.id, "billing.invoice.update.any"))
          const key = yield* Idempotency.keyOf(headers)
          return yield* idempotency
            .claimed(
              { caller: userId, key, request: { route: "invoices.pay", id: params.id } },
              Invoice,
              lifecycle.collect(params.id, { manual: true }),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
        }),
      )
      .handle("void", ({ params }) => lifecycle.voidInvoice(params.id))
      .handle("mine", ({ query }) =>
        Effect.flatMap(caller, (userId) => reads.invoices({ ...query, customerId: userId })),
      )
      .handle("list", ({ query }) => reads.invoices(query))
      .handle("get", ({ params }) => Effect.flatMap(caller, (userId) => provide(reads.invoice(userId, params.id))))
  }),
)

/**
 * Billing's HTTP routes, ready to serve; needs `Plans`, `PaymentMethods`, `Reads`, `Lifecycle`, `Idempotency`,
 * `BillingSettings` and `Permissions`.
 */
export const HttpLive = HttpApiBuilder.layer(BillingApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([PlansHttp, PaymentMethodHttp, SubscriptionsHttp, InvoicesHttp, PlanChangeHttp, TestClocksHttp]),
  Layer.provide(validationProblems),
)
