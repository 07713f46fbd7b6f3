import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
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
import { manifest } from "./module.ts"

// Lengths count code points, as JSON Schema's minLength/maxLength do, and patterns are Unicode (`u`) regular
// expressions, which Effect exports to the document: what the document says is what the server enforces.

/** An email address as accounts use it (`format: email` documents it; the pattern and length are what is checked). */
export const Email = Schema.String.check(
  Schema.isMaxCodePoints(254, { message: "must be at most 254 characters" }),
  Schema.isPattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/u, { message: "must be an email address" }),
).annotate({ format: "email" })

/** A new password: 8–128 characters (hashed by identity with argon2id). */
export const NewPassword = Schema.String.check(
  Schema.isMinCodePoints(8, { message: "must be at least 8 characters" }),
  Schema.isMaxCodePoints(128, { message: "must be at most 128 characters" }),
)

/** A display name. */
export const Name = Schema.String.check(
  Schema.isTrimmed({ message: "must not start or end with spaces" }),
  Schema.isMinCodePoints(1, { message: "must not be empty" }),
  Schema.isMaxCodePoints(100, { message: "must be at most 100 characters" }),
)

// A refresh token as issued (43 base64url characters); anything far longer is refused before a lookup.
const RefreshToken = Schema.String.check(
  Schema.isMinCodePoints(1, { message: "must not be empty" }),
  Schema.isMaxCodePoints(256, { message: "must be at most 256 characters" }),
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
    })
      .pipe(Route.open({ ipPerMinute: 10 }))
      .annotate(OpenApi.Summary, "Register an account"),
    HttpApiEndpoint.post("login", "/api/v1/auth/login", {
      // No policy checks on sign-in: a too-short password is simply a wrong one.
      payload: Schema.Struct({
        email: Schema.String.check(Schema.isMaxCodePoints(254)),
        password: Schema.String.check(Schema.isMaxCodePoints(1024)),
      }),
      success: TokenResponse,
      error: [InvalidCredentials, ValidationFailed, TooManyRequests, ServiceUnavailable],
    })
      .pipe(Route.open({ ipPerMinute: 30 }))
      .annotate(OpenApi.Summary, "Sign in with email and password"),
    HttpApiEndpoint.post("refresh", "/api/v1/auth/refresh", {
      payload: Schema.Struct({ refresh_token: RefreshToken }),
      success: TokenResponse,
      error: [Unauthorized, TokenReused, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open({ ipPerMinute: 60 }))
      .annotate(OpenApi.Summary, "Exchange a refresh token for new tokens"),
    HttpApiEndpoint.post("logout", "/api/v1/auth/logout", {
      payload: Schema.Struct({ refresh_token: RefreshToken }),
      success: HttpApiSchema.NoContent,
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "End the session of a refresh token"),
  )
  .add(
    HttpApiEndpoint.post("logoutAll", "/api/v1/auth/logout-all", {
      success: HttpApiSchema.NoContent,
      error: [ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "End every session of the signed-in user"),
  )
  .annotate(OpenApi.Description, "Registration, sign-in, token refresh and sign-out") {}

const ProviderName = Schema.String.check(Schema.isPattern(/^[a-z0-9-]{1,32}$/u, { message: "must be a provider name" }))

/**
 * Where the browser lands after an OIDC sign-in: a path on this origin only (no open redirect). One leading "/" and
 * then printable ASCII without backslash (browsers read it as "/") or "#" (the code travels in the fragment); so
 * "//host", "/<backslash>host", schemes, spaces and control characters (browsers strip tabs and newlines, which would
 * turn "/<tab>/host" into "//host") are refused.
 */
export const ReturnTo = Schema.String.check(
  Schema.isMaxCodePoints(2000, { message: "must be at most 2000 characters" }),
  Schema.isPattern(/^\/(?![/\\])[\x21-\x22\x24-\x5b\x5d-\x7e]*$/u, {
    message: "must be a path on this site: one leading /, printable ASCII, no backslash or #",
  }),
)

// The one-time code of a browser sign-in (43 base64url characters as issued).
const HandOffCode = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_-]{1,200}$/u, { message: "must be 1 to 200 base64url characters" }),
)

/** Sign-in with external OpenID Providers (authorization code + PKCE). */
export class OidcApi extends HttpApiGroup.make("oidc")
  .add(
    HttpApiEndpoint.get("providers", "/api/v1/auth/oidc/providers", {
      success: Schema.Struct({ items: Schema.Array(Schema.Struct({ name: Schema.String })) }),
      error: [ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "The OpenID providers one can sign in with (their names)"),
    HttpApiEndpoint.get("authorize", "/api/v1/auth/oidc/:provider/authorize", {
      params: { provider: ProviderName },
      // With returnTo, the callback sends the browser to `<returnTo>#oidc_code=<code>` (see exchange).
      query: { returnTo: Schema.optional(ReturnTo) },
      success: HttpApiSchema.Empty(302),
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "Start signing in with an OpenID provider (redirects to it)"),
    // The provider's redirect: `code` and `state` (or `error`) in the query string, read as sent.
    // Without returnTo the token response; with it a 303 to `<returnTo>#oidc_code=<one-time code>`, or, refused once the
    // attempt is known, to `<returnTo>#oidc_error=<the problem's detail>`.
    HttpApiEndpoint.get("callback", "/api/v1/auth/oidc/:provider/callback", {
      params: { provider: ProviderName },
      success: [TokenResponse, HttpApiSchema.Empty(303)],
      error: [NotFound, Unauthorized, Forbidden, Conflict, InvalidCredentials, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "Finish signing in with an OpenID provider"),
    HttpApiEndpoint.post("exchange", "/api/v1/auth/oidc/exchange", {
      payload: Schema.Struct({ code: HandOffCode }),
      success: TokenResponse,
      error: [Unauthorized, ValidationFailed, TooManyRequests, ServiceUnavailable],
    })
      .pipe(Route.open({ ipPerMinute: 30 }))
      .annotate(
        OpenApi.Summary,
        "Redeem the one-time code of a browser OIDC sign-in for its tokens (once, within 60 s)",
      ),
  )
  .annotate(OpenApi.Description, "Sign-in with external OpenID providers (authorization code with PKCE)") {}

/** The public keys access tokens are verified with. */
export class KeysApi extends HttpApiGroup.make("keys")
  .add(
    HttpApiEndpoint.get("jwks", "/.well-known/jwks.json", {
      success: Schema.Struct({ keys: Schema.Array(Jwk) }),
      error: [ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "The public keys access tokens are signed with (JWKS)"),
  )
  .annotate(OpenApi.Description, "The public keys that verify access tokens") {}

/** Auth's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class AuthApi extends Contract.make(HttpApi.make("auth").add(SessionsApi).add(OidcApi).add(KeysApi), manifest) {}
