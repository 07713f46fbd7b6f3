import { Effect, Layer, Schema } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { DbError } from "../../shared/Db.ts"
import * as Idempotency from "../../shared/Idempotency.ts"
import * as Problem from "../../shared/Problem.ts"
import { validationProblems } from "../../shared/Server.ts"
import { BillingApi } from "./Api.ts"
import { Plan } from "./Model.ts"
import { PaymentMethods } from "./PaymentMethods.ts"
import { PlanChangeHttp } from "./PlanChangeHttp.ts"
import { Plans } from "./Plans.ts"
import { Reads } from "./Reads.ts"

const unavailable = Problem.unavailable("database unavailable", "billing is unavailable, retry later")

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

/** Handlers of the subscriptions' reads (the writes are the engine's, Lifecycle.ts). */
export const SubscriptionsHttp = HttpApiBuilder.group(
  BillingApi,
  "subscriptions",
  Effect.fn(function* (handlers) {
    const reads = yield* Reads
    const provide = yield* withPermissions
    return handlers
      .handle("mine", ({ query }) =>
        Effect.flatMap(caller, (userId) => reads.subscriptions({ ...query, customerId: userId })),
      )
      .handle("list", ({ query }) => reads.subscriptions(query))
      .handle("get", ({ params }) => Effect.flatMap(caller, (userId) => provide(reads.subscription(userId, params.id))))
  }),
)

/** Handlers of the invoices' reads (the writes are the engine's, Lifecycle.ts). */
export const InvoicesHttp = HttpApiBuilder.group(
  BillingApi,
  "invoices",
  Effect.fn(function* (handlers) {
    const reads = yield* Reads
    const provide = yield* withPermissions
    return handlers
      .handle("mine", ({ query }) =>
        Effect.flatMap(caller, (userId) => reads.invoices({ ...query, customerId: userId })),
      )
      .handle("list", ({ query }) => reads.invoices(query))
      .handle("get", ({ params }) => Effect.flatMap(caller, (userId) => provide(reads.invoice(userId, params.id))))
  }),
)

/** Billing's HTTP routes, ready to serve; needs `Plans`, `PaymentMethods`, `Reads`, `Idempotency` and `Permissions`. */
export const HttpLive = HttpApiBuilder.layer(BillingApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([PlansHttp, PaymentMethodHttp, SubscriptionsHttp, InvoicesHttp, PlanChangeHttp]),
  Layer.provide(validationProblems),
)
