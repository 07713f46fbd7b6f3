import { Clock, Effect, Option, Schema } from "effect"
import { type CryptoKey, decodeProtectedHeader, errors, jwtVerify, type KeyObject } from "jose"
import { makeLocal } from "../Cache.ts"
import type { ServiceUnavailable } from "../Problem.ts"

/** The only algorithm access tokens may be signed with (Ed25519); anything else is refused before any key lookup. */
export const ACCESS_TOKEN_ALG = "EdDSA"

/** Why an access token was refused; never echoes the token. */
export const InvalidTokenReason = Schema.Literals([
  "malformed",
  "unsupported_alg",
  "unknown_kid",
  "bad_signature",
  "expired",
  "not_yet_valid",
  "wrong_issuer",
  "wrong_audience",
  "invalid_claims",
])

/** Why an access token was refused. */
export type InvalidTokenReason = typeof InvalidTokenReason.Type

/** An access token that must not be accepted, with the reason (for logs and metrics, not for clients). */
export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {
  reason: InvalidTokenReason,
}) {}

/** The verified claims of an access token. */
export const AccessClaims = Schema.Struct({
  iss: Schema.String,
  aud: Schema.String,
  sub: Schema.String,
  sid: Schema.String,
  jti: Schema.String,
  iat: Schema.Number,
  exp: Schema.Number,
  roles: Schema.optional(Schema.Array(Schema.String)),
})

/** The verified claims of an access token. */
export type AccessClaims = typeof AccessClaims.Type

/** A public key that verifies access tokens, with the algorithm it was published for. */
export interface AccessTokenKey {
  readonly alg: string
  readonly publicKey: CryptoKey | KeyObject
}

/** Finds the verification key of a kid: None when it is unknown (or retired), ServiceUnavailable when it cannot tell. */
export type KeyResolver = (kid: string) => Effect.Effect<Option.Option<AccessTokenKey>, ServiceUnavailable>

/** What a verifier checks besides the signature: issuer, audience and the tolerated clock skew (default 5 s). */
export interface VerifyOptions {
  readonly issuer: string
  readonly audience: string
  readonly clockToleranceSeconds?: number
}

const decodeClaims = Schema.decodeUnknownEffect(AccessClaims)

/**
 * Verifies an access JWT: alg allow-list and kid before any key lookup, then signature, `typ`, issuer, audience,
 * lifetime (with a future `iat` refused too) and the claims' shape.
 */
export const verify = Effect.fnUntraced(function* (
  token: string,
  resolveKey: KeyResolver,
  options: VerifyOptions,
): Effect.fn.Return<AccessClaims, InvalidToken | ServiceUnavailable> {
  const tolerance = options.clockToleranceSeconds ?? 5
  const header = yield* Effect.try({
    try: () => decodeProtectedHeader(token),
    catch: () => new InvalidToken({ reason: "malformed" }),
  })
  // Allow-list before any key lookup: `none`, HS256 (HMAC with the public key) and anything else are refused.
  if (header.alg !== ACCESS_TOKEN_ALG) return yield* new InvalidToken({ reason: "unsupported_alg" })
  if (typeof header.kid !== "string" || header.kid === "") return yield* new InvalidToken({ reason: "unknown_kid" })
  const key = yield* resolveKey(header.kid)
  if (Option.isNone(key) || key.value.alg !== header.alg) return yield* new InvalidToken({ reason: "unknown_kid" })
  const now = yield* Clock.currentTimeMillis
  const { payload } = yield* Effect.tryPromise({
    try: () =>
      jwtVerify(token, key.value.publicKey, {
        algorithms: [ACCESS_TOKEN_ALG],
        issuer: options.issuer,
        audience: options.audience,
        typ: "JWT",
        requiredClaims: ["iss", "aud", "sub", "sid", "jti", "iat", "exp"],
        currentDate: new Date(now),
        clockTolerance: tolerance,
      }),
    catch: (error) => new InvalidToken({ reason: reasonOf(error) }),
  })
  // jose does not check a future iat on its own: refuse tokens issued beyond the tolerated skew.
  if (typeof payload.iat === "number" && payload.iat > now / 1000 + tolerance)
    return yield* new InvalidToken({ reason: "not_yet_valid" })
  return yield* decodeClaims(payload).pipe(Effect.mapError(() => new InvalidToken({ reason: "invalid_claims" })))
})

const reasonOf = (error: unknown): InvalidTokenReason => {
  if (error instanceof errors.JWTExpired) return "expired"
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return "wrong_audience"
    if (error.claim === "iss") return "wrong_issuer"
    if (error.claim === "nbf" || error.claim === "iat") return "not_yet_valid"
    return "invalid_claims"
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return "bad_signature"
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) return "unsupported_alg"
  return "malformed"
}

/**
 * `verify` with a memory of the tokens it accepted: the same token string (signature included) is not verified again
 * until its `exp` (gateways and services see one token many times; an Ed25519 check and the claim checks cost more
 * than the rest of a proxied request), and concurrent requests with one new token verify it once. The kernel's
 * `LocalCache`, bounded by `maxEntries` (default 10 000, least recently used first out); refusals are never remembered,
 * and revocation is checked by callers on every request regardless.
 */
export const cachedVerifier = (resolveKey: KeyResolver, options: VerifyOptions & { readonly maxEntries?: number }) =>
  Effect.map(
    makeLocal({
      capacity: options.maxEntries ?? 10_000,
      lookup: (token: string) => verify(token, resolveKey, options),
      expiresAt: (claims) => claims.exp * 1000,
    }),
    (accepted) =>
      Object.assign(
        (token: string): Effect.Effect<AccessClaims, InvalidToken | ServiceUnavailable> => accepted.get(token),
        {
          /** The claims of a token accepted before and not expired, without verifying anything: undefined otherwise. */
          known: (token: string): AccessClaims | undefined => accepted.peekNow(token),
        },
      ),
  )
