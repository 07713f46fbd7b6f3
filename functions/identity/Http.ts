import { Effect, Layer, Schema } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { Forbidden } from "../../shared/Problem.ts"
import { validationProblems } from "../../shared/Server.ts"
import { IdentityApi } from "./Api.ts"
import { UserId } from "./User.ts"
import { Users } from "./Users.ts"

const decodeUserId = Schema.decodeUnknownEffect(UserId)

// The signed-in caller as an identity user; a subject that is no user id here cannot own an account.
const caller = Effect.gen(function* () {
  const user = yield* CurrentUser
  const id = yield* decodeUserId(user.userId).pipe(
    Effect.mapError(() => new Forbidden({ detail: "this account is not active" })),
  )
  return { id, sessionId: user.sessionId }
})

/** Handlers of the me group: the signed-in caller's own account. */
export const MeHttp = HttpApiBuilder.group(
  IdentityApi,
  "me",
  Effect.fn(function* (handlers) {
    const users = yield* Users
    return handlers
      .handle("get", () => Effect.flatMap(caller, ({ id }) => users.me(id)))
      .handle("update", ({ payload }) => Effect.flatMap(caller, ({ id }) => users.updateMe(id, payload)))
      .handle("changePassword", ({ payload }) =>
        Effect.flatMap(caller, ({ id, sessionId }) =>
          users.changePassword({ id, keepSessionId: sessionId, ...payload }),
        ),
      )
      .handle("deactivate", () => Effect.flatMap(caller, ({ id }) => users.deactivate(id)))
      .handle("resendVerification", () => Effect.flatMap(caller, ({ id }) => users.resendVerification(id)))
  }),
)

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

/** Identity's HTTP routes, ready to serve; needs `Users` and the `Authentication` middleware. */
export const HttpLive = HttpApiBuilder.layer(IdentityApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([MeHttp, UsersHttp, AccountHttp]),
  Layer.provide(validationProblems),
)
