import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as Idempotency from "../../shared/Idempotency.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { BillingApi } from "./Api.ts"
import { manifest } from "./module.ts"
import { PlanChanges } from "./PlanChange.ts"

/**
 * Handlers of the plan-change group, with their domain (PlanChanges over the function's database, its outbox and
 * idempotency keys): the app provides Db, Idempotency and Permissions.
 */
export const PlanChangeHttp = HttpApiBuilder.group(
  BillingApi,
  "planChange",
  Effect.fn(function* (handlers) {
    const changes = yield* PlanChanges
    // The ownership rule asks authz per call: the permissions the app is built with (stand-ins included).
    const permissions = yield* Permissions
    const asCaller = <A, E>(f: (userId: string) => Effect.Effect<A, E, Permissions>) =>
      Effect.flatMap(Effect.service(CurrentUser), (user) =>
        f(user.userId).pipe(Effect.provideService(Permissions, permissions)),
      )
    return handlers
      .handle("preview", ({ params, query }) => asCaller((userId) => changes.preview(userId, params.id, query.planId)))
      .handle("change", ({ params, headers, payload }) =>
        Effect.flatMap(Idempotency.keyOf(headers), (key) =>
          asCaller((userId) => changes.change(userId, params.id, payload.planId, key)),
        ),
      )
  }),
).pipe(Layer.provide(PlanChanges.layer.pipe(Layer.provide(Outbox.layer(manifest)))))
