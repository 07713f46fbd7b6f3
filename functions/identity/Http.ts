import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { validationProblems } from "../../shared/Server.ts"
import { IdentityApi } from "./Api.ts"
import { Users } from "./Users.ts"

/** Handlers of the users group. */
export const UsersHttp = HttpApiBuilder.group(
  IdentityApi,
  "users",
  Effect.fn(function* (handlers) {
    const users = yield* Users
    return handlers
      .handle("list", ({ query }) => users.list(query))
      .handle("get", ({ params }) => users.get(params.id))
      .handle("delete", ({ params }) => users.remove(params.id))
      .handle("update", ({ params, payload }) => users.update(params.id, payload))
  }),
)

/** Handlers of the account group (verification and reset links). */
export const AccountHttp = HttpApiBuilder.group(
  IdentityApi,
  "account",
  Effect.fn(function* (handlers) {
    const users = yield* Users
    return handlers
      .handle("verifyEmail", ({ payload }) => Effect.asVoid(users.verifyEmail(payload.token)))
      .handle("requestPasswordReset", ({ payload }) => users.requestPasswordReset(payload.email))
      .handle("confirmPasswordReset", ({ payload }) => users.confirmPasswordReset(payload.token, payload.newPassword))
  }),
)

/** Identity's HTTP routes, ready to serve; needs `Users`. */
export const HttpLive = HttpApiBuilder.layer(IdentityApi, { openapiPath: "/openapi.json" }).pipe(
  Layer.provide([UsersHttp, AccountHttp]),
  Layer.provide(validationProblems),
)
