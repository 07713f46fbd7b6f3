import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import { Authentication } from "../../shared/Authentication.ts"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import {
  Forbidden,
  InvalidCredentials,
  InvalidToken,
  LastAdmin,
  NotFound,
  ServiceUnavailable,
  TooManyRequests,
  ValidationFailed,
} from "../../shared/Problem.ts"
import { headerParsing, strictParsing } from "../../shared/Server.ts"
import { Password } from "./Passwords.ts"
import { Name, User, UserChanges, UserId } from "./User.ts"

/** Users endpoints of the public contract (served through the gateway). */
export class UsersApi extends HttpApiGroup.make("users").add(
  HttpApiEndpoint.get("list", "/api/v1/users", {
    query: { ...pageQuery, email: Schema.optional(Schema.String.check(Schema.isMaxLength(254))) },
    success: Page(User),
    error: [ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.get("get", "/api/v1/users/:id", {
    params: { id: UserId },
    success: User,
    error: [NotFound, ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.patch("update", "/api/v1/users/:id", {
    params: { id: UserId },
    payload: UserChanges,
    success: User,
    error: [NotFound, ValidationFailed, LastAdmin, ServiceUnavailable],
  }),
  HttpApiEndpoint.delete("delete", "/api/v1/users/:id", {
    params: { id: UserId },
    success: HttpApiSchema.NoContent,
    error: [NotFound, ValidationFailed, LastAdmin, ServiceUnavailable],
  }),
) {}

/** Account flows identity owns, under the public /auth prefix: email verification and password reset. */
export class AccountApi extends HttpApiGroup.make("account").add(
  HttpApiEndpoint.post("verifyEmail", "/api/v1/auth/verify-email", {
    payload: Schema.Struct({ token: Schema.String.check(Schema.isMaxLength(256)) }),
    success: HttpApiSchema.NoContent,
    error: [InvalidToken, ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.post("requestPasswordReset", "/api/v1/auth/password-reset", {
    payload: Schema.Struct({ email: Schema.String.check(Schema.isMaxLength(254)) }),
    success: HttpApiSchema.Accepted,
    error: [ValidationFailed, ServiceUnavailable],
  }),
  HttpApiEndpoint.post("confirmPasswordReset", "/api/v1/auth/password-reset/confirm", {
    payload: Schema.Struct({ token: Schema.String.check(Schema.isMaxLength(256)), newPassword: Password }),
    success: HttpApiSchema.NoContent,
    error: [InvalidToken, ValidationFailed, ServiceUnavailable],
  }),
) {}

/**
 * The signed-in caller's own account (bearer access token). A token of an account that is no longer active (disabled
 * or deleted) gets 403 forbidden until auth has ended its sessions (then 401).
 */
export class MeApi extends HttpApiGroup.make("me")
  .add(
    HttpApiEndpoint.get("get", "/api/v1/users/me", {
      success: User,
      error: [Forbidden, ServiceUnavailable],
    }),
    HttpApiEndpoint.patch("update", "/api/v1/users/me", {
      payload: Schema.Struct({ name: Schema.optional(Name) }),
      success: User,
      error: [Forbidden, ValidationFailed, ServiceUnavailable],
    }),
    HttpApiEndpoint.post("changePassword", "/api/v1/users/me/password", {
      payload: Schema.Struct({ currentPassword: Schema.String.check(Schema.isMaxLength(128)), newPassword: Password }),
      success: HttpApiSchema.NoContent,
      error: [InvalidCredentials, Forbidden, TooManyRequests, ValidationFailed, ServiceUnavailable],
    }),
    HttpApiEndpoint.delete("deactivate", "/api/v1/users/me", {
      success: HttpApiSchema.NoContent,
      error: [Forbidden, LastAdmin, ServiceUnavailable],
    }),
    HttpApiEndpoint.post("resendVerification", "/api/v1/auth/resend-verification", {
      success: HttpApiSchema.Accepted,
      error: [Forbidden, ServiceUnavailable],
    }),
  )
  .middleware(Authentication) {}

/** Identity's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class IdentityApi extends HttpApi.make("identity")
  .add(MeApi)
  .add(UsersApi)
  .add(AccountApi)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotate(HttpApi.ParseOptions, strictParsing)
  .annotate(HttpApi.HeadersParseOptions, headerParsing)
  .annotateMerge(OpenApi.annotations({ title: "Identity", version: "0.1.0" })) {}
