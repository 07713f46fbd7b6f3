import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "effect/http-api"
import { Authentication } from "../../shared/Authentication.ts"
import {
  Conflict,
  EmailTaken,
  Forbidden,
  InvalidCredentials,
  NotFound,
  ServiceUnavailable,
  TokenReused,
  TooManyRequests,
  Unauthorized,
  ValidationFailed,
} from "../../shared/Problem.ts"
import { headerParsing, strictParsing } from "../../shared/Server.ts"

/** An email address as accounts use it. */
export const Email = Schema.String.check(
  Schema.isMaxLength(254, { message: "must be at most 254 characters" }),
  Schema.isPattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: "must be an email address" }),
)

/** A new password: 8–128 characters (hashed by identity with argon2id). */
export const NewPassword = Schema.String.check(
  Schema.isMinLength(8, { message: "must be at least 8 characters" }),
  Schema.isMaxLength(128, { message: "must be at most 128 characters" }),
)

/** A display name. */
export const Name = Schema.String.check(
  Schema.isTrimmed({ message: "must not start or end with spaces" }),
  Schema.isMinLength(1, { message: "must not be empty" }),
  Schema.isMaxLength(100, { message: "must be at most 100 characters" }),
)

// A refresh token as issued (43 base64url characters); anything far longer is refused before a lookup.
const RefreshToken = Schema.String.check(
  Schema.isMinLength(1, { message: "must not be empty" }),
  Schema.isMaxLength(256, { message: "must be at most 256 characters" }),
)

/** The account registration created (identity's user). */
export const RegisteredUser = Schema.Struct({
  id: Schema.String,
  email: Schema.String,
  name: Schema.String,
  emailVerified: Schema.Boolean,
  status: Schema.String,
  createdAt: Schema.String,
  updatedAt: Schema.String,
})

/** The OAuth 2.0 token response (RFC 6749 §5.1 names). */
export const TokenResponse = Schema.Struct({
  access_token: Schema.String,
  token_type: Schema.Literal("Bearer"),
  expires_in: Schema.Int,
  refresh_token: Schema.String,
})

/** A public JWK of the signing keys. */
const Jwk = Schema.Record(Schema.String, Schema.Unknown)

/** Registration, sign-in and sessions: the public /api/v1/auth contract (served through the gateway). */
export class SessionsApi extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("register", "/api/v1/auth/register", {
      payload: Schema.Struct({ email: Email, password: NewPassword, name: Name }),
      success: RegisteredUser.pipe(HttpApiSchema.status(201)),
      error: [EmailTaken, ValidationFailed, TooManyRequests, ServiceUnavailable],
    }),
    HttpApiEndpoint.post("login", "/api/v1/auth/login", {
      // No policy checks on sign-in: a too-short password is simply a wrong one.
      payload: Schema.Struct({
        email: Schema.String.check(Schema.isMaxLength(254)),
        password: Schema.String.check(Schema.isMaxLength(1024)),
      }),
      success: TokenResponse,
      error: [InvalidCredentials, ValidationFailed, TooManyRequests, ServiceUnavailable],
    }),
    HttpApiEndpoint.post("refresh", "/api/v1/auth/refresh", {
      payload: Schema.Struct({ refresh_token: RefreshToken }),
      success: TokenResponse,
      error: [Unauthorized, TokenReused, ValidationFailed, ServiceUnavailable],
    }),
    HttpApiEndpoint.post("logout", "/api/v1/auth/logout", {
      payload: Schema.Struct({ refresh_token: RefreshToken }),
      success: HttpApiSchema.NoContent,
      error: [ValidationFailed, ServiceUnavailable],
    }),
  )
  .add(
    HttpApiEndpoint.post("logoutAll", "/api/v1/auth/logout-all", {
      success: HttpApiSchema.NoContent,
      error: [ServiceUnavailable],
    }).middleware(Authentication),
  ) {}

const ProviderName = Schema.String.check(Schema.isPattern(/^[a-z0-9-]{1,32}$/, { message: "must be a provider name" }))

/** Sign-in with external OpenID Providers (authorization code + PKCE). */
export class OidcApi extends HttpApiGroup.make("oidc").add(
  HttpApiEndpoint.get("authorize", "/api/v1/auth/oidc/:provider/authorize", {
    params: { provider: ProviderName },
    success: HttpApiSchema.Empty(302),
    error: [NotFound, ValidationFailed, ServiceUnavailable],
  }),
  // The provider's redirect: `code` and `state` (or `error`) in the query string, read as sent.
  HttpApiEndpoint.get("callback", "/api/v1/auth/oidc/:provider/callback", {
    params: { provider: ProviderName },
    success: TokenResponse,
    error: [NotFound, Unauthorized, Forbidden, Conflict, InvalidCredentials, ValidationFailed, ServiceUnavailable],
  }),
) {}

/** The public keys access tokens are verified with. */
export class KeysApi extends HttpApiGroup.make("keys").add(
  HttpApiEndpoint.get("jwks", "/.well-known/jwks.json", {
    success: Schema.Struct({ keys: Schema.Array(Jwk) }),
    error: [ServiceUnavailable],
  }),
) {}

/** Auth's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class AuthApi extends HttpApi.make("auth")
  .add(SessionsApi)
  .add(OidcApi)
  .add(KeysApi)
  .middleware(HttpApiMiddleware.ProblemDetails)
  .annotate(HttpApi.ParseOptions, strictParsing)
  .annotate(HttpApi.HeadersParseOptions, headerParsing)
  .annotateMerge(OpenApi.annotations({ title: "Auth", version: "0.1.0" })) {}
