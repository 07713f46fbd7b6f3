import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
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
import { manifest } from "./module.ts"
import { Password } from "./Passwords.ts"
import { Name, User, UserChanges, UserId } from "./User.ts"

/** Users endpoints of the public contract (served through the gateway). */
export class UsersApi extends HttpApiGroup.make("users")
  .annotate(OpenApi.Description, "Every user's account, for administrators")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/users", {
      query: { ...pageQuery, email: Schema.optional(Schema.String.check(Schema.isMaxCodePoints(254))) },
      success: Page(User),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("identity.user.read"))
      .annotate(OpenApi.Summary, "List users, optionally by email"),
    HttpApiEndpoint.get("get", "/api/v1/users/:id", {
      params: { id: UserId },
      success: User,
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("identity.user.read"))
      .annotate(OpenApi.Summary, "Get a user"),
    HttpApiEndpoint.patch("update", "/api/v1/users/:id", {
      params: { id: UserId },
      payload: UserChanges,
      success: User,
      error: [NotFound, ValidationFailed, LastAdmin, ServiceUnavailable],
    })
      .pipe(Route.requires("identity.user.update"))
      .annotate(OpenApi.Summary, "Change a user's name or status"),
    HttpApiEndpoint.delete("delete", "/api/v1/users/:id", {
      params: { id: UserId },
      success: HttpApiSchema.NoContent,
      error: [NotFound, ValidationFailed, LastAdmin, ServiceUnavailable],
    })
      .pipe(Route.requires("identity.user.delete"))
      .annotate(OpenApi.Summary, "Delete a user"),
  ) {}

/** Account flows identity owns, under the public /auth prefix: email verification and password reset. */
export class AccountApi extends HttpApiGroup.make("account")
  .annotate(OpenApi.Description, "Email verification and password reset with mailed tokens")
  .add(
    HttpApiEndpoint.post("verifyEmail", "/api/v1/auth/verify-email", {
      payload: Schema.Struct({ token: Schema.String.check(Schema.isMaxCodePoints(256)) }),
      success: HttpApiSchema.NoContent,
      error: [InvalidToken, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open({ ipPerMinute: 30 }))
      .annotate(OpenApi.Summary, "Verify an email address with a mailed token"),
    HttpApiEndpoint.post("requestPasswordReset", "/api/v1/auth/password-reset", {
      payload: Schema.Struct({
        // Any text: the answer is 202 whether or not it is an account's address (no enumeration).
        email: Schema.String.check(Schema.isMaxCodePoints(254)),
      }),
      success: HttpApiSchema.Accepted,
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open({ ipPerMinute: 10 }))
      .annotate(OpenApi.Summary, "Request a password reset mail"),
    HttpApiEndpoint.post("confirmPasswordReset", "/api/v1/auth/password-reset/confirm", {
      payload: Schema.Struct({ token: Schema.String.check(Schema.isMaxCodePoints(256)), newPassword: Password }),
      success: HttpApiSchema.NoContent,
      error: [InvalidToken, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open({ ipPerMinute: 10 }))
      .annotate(OpenApi.Summary, "Set a new password with a mailed reset token"),
  ) {}

/**
 * The signed-in caller's own account (bearer access token). A token of an account that is no longer active (disabled
 * or deleted) gets 403 forbidden until auth has ended its sessions (then 401).
 */
export class MeApi extends HttpApiGroup.make("me")
  .annotate(OpenApi.Description, "The signed-in user: own account and effective permissions")
  .add(
    HttpApiEndpoint.get("get", "/api/v1/users/me", {
      success: User,
      error: [Forbidden, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Get the signed-in user"),
    HttpApiEndpoint.patch("update", "/api/v1/users/me", {
      payload: Schema.Struct({ name: Schema.optional(Name) }),
      success: User,
      error: [Forbidden, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Change the signed-in user's name"),
    HttpApiEndpoint.post("changePassword", "/api/v1/users/me/password", {
      payload: Schema.Struct({
        currentPassword: Schema.String.check(Schema.isMaxCodePoints(128)),
        newPassword: Password,
      }),
      success: HttpApiSchema.NoContent,
      error: [InvalidCredentials, Forbidden, TooManyRequests, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Change the signed-in user's password"),
    HttpApiEndpoint.delete("deactivate", "/api/v1/users/me", {
      success: HttpApiSchema.NoContent,
      error: [Forbidden, LastAdmin, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Delete the signed-in user's own account"),
    HttpApiEndpoint.post("resendVerification", "/api/v1/auth/resend-verification", {
      success: HttpApiSchema.Accepted,
      error: [Forbidden, ServiceUnavailable],
    })
      .pipe(Route.signedIn({ userPerMinute: 5 }))
      .annotate(OpenApi.Summary, "Send the verification mail again"),
  ) {}

/** Identity's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class IdentityApi extends Contract.make(
  HttpApi.make("identity").add(MeApi).add(UsersApi).add(AccountApi),
  manifest,
) {}
