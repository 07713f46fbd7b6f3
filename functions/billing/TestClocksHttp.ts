import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import * as Idempotency from "../../shared/Idempotency.ts"
import { NotFound } from "../../shared/Problem.ts"
import { BillingApi } from "./Api.ts"
import { BillingSettings } from "./Config.ts"
import { unavailable } from "./Model.ts"
import { TestClock, TestClocks } from "./TestClocks.ts"

/**
 * Handlers of the test clocks, with their domain (TestClocks over the engine): the app provides Lifecycle, Db,
 * Idempotency and BillingSettings. With BILLING_TEST_CLOCKS off, both routes answer 404 as if they did not exist.
 */
export const TestClocksHttp = HttpApiBuilder.group(
  BillingApi,
  "testClocks",
  Effect.fn(function* (handlers) {
    const clocks = yield* TestClocks
    const idempotency = yield* Idempotency.Idempotency
    const settings = yield* BillingSettings
    const enabled = settings.testClocks
      ? Effect.void
      : Effect.fail(new NotFound({ detail: "test clocks are off (BILLING_TEST_CLOCKS)" }))
    return handlers
      .handle("create", ({ headers, payload }) =>
        Effect.gen(function* () {
          yield* enabled
          const user = yield* Effect.service(CurrentUser)
          const key = yield* Idempotency.keyOf(headers)
          return yield* idempotency
            .claimed(
              { caller: user.userId, key, request: { route: "testClocks.create", payload } },
              TestClock,
              clocks.create(user.userId, payload.frozenTime === undefined ? undefined : new Date(payload.frozenTime)),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
        }),
      )
      .handle("advance", ({ params, payload }) =>
        Effect.andThen(enabled, clocks.advance(params.id, new Date(payload.to))),
      )
  }),
).pipe(Layer.provide(TestClocks.layer))
