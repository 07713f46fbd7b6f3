import { randomUUID } from "node:crypto"
import { Clock, Context, Effect, Layer, Option, Schema } from "effect"
import { decodeProtectedHeader, errors, jwtVerify, SignJWT } from "jose"
import type { ServiceUnavailable } from "../../shared/Problem.ts"
import { SIGNING_ALG, SigningKeys } from "./SigningKeys.ts"

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

/** A freshly signed access token; `expiresIn` in seconds (the OAuth `expires_in`). */
export interface IssuedAccessToken {
  readonly token: string
  readonly jti: string
  readonly expiresIn: number
}

/** Token settings: `JWT_ISSUER`, `JWT_AUDIENCE`, `ACCESS_TOKEN_TTL_SECONDS` (default 900). */
export interface TokensOptions {
  readonly issuer: string
  readonly audience: string
  readonly ttlSeconds: number
  /** Tolerated clock skew between instances when checking `exp` and `iat` (default 5 s). */
  readonly clockToleranceSeconds?: number
}

const decodeClaims = Schema.decodeUnknownEffect(AccessClaims)

/** Issues and verifies access JWTs signed with the active asymmetric signing key. */
export class Tokens extends Context.Service<
  Tokens,
  {
    issueAccessToken(input: {
      readonly sub: string
      readonly sid: string
      readonly roles?: ReadonlyArray<string>
    }): Effect.Effect<IssuedAccessToken, ServiceUnavailable>
    /** Verifies signature (only the platform's asymmetric alg), kid, issuer, audience and lifetime. */
    verifyAccessToken(token: string): Effect.Effect<AccessClaims, InvalidToken | ServiceUnavailable>
  }
>()("auth/Tokens") {
  /** Tokens over the signing keys. */
  static readonly layer = (options: TokensOptions) =>
    Layer.effect(
      Tokens,
      Effect.gen(function* () {
        const keys = yield* SigningKeys
        const tolerance = options.clockToleranceSeconds ?? 5

        const issueAccessToken = Effect.fn("Tokens.issueAccessToken")(function* (input: {
          readonly sub: string
          readonly sid: string
          readonly roles?: ReadonlyArray<string>
        }) {
          const key = yield* keys.activeKey()
          const iat = Math.floor((yield* Clock.currentTimeMillis) / 1000)
          const jti = randomUUID()
          const token = yield* Effect.promise(() =>
            new SignJWT({ sid: input.sid, ...(input.roles ? { roles: [...input.roles] } : {}) })
              .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT" })
              .setIssuer(options.issuer)
              .setAudience(options.audience)
              .setSubject(input.sub)
              .setJti(jti)
              .setIssuedAt(iat)
              .setExpirationTime(iat + options.ttlSeconds)
              .sign(key.privateKey),
          )
          return { token, jti, expiresIn: options.ttlSeconds }
        })

        const verifyAccessToken = Effect.fn("Tokens.verifyAccessToken")(function* (token: string) {
          const header = yield* Effect.try({
            try: () => decodeProtectedHeader(token),
            catch: () => new InvalidToken({ reason: "malformed" }),
          })
          // Allow-list before any key lookup: `none`, HS256 (HMAC with the public key) and anything else are refused.
          if (header.alg !== SIGNING_ALG) return yield* new InvalidToken({ reason: "unsupported_alg" })
          if (typeof header.kid !== "string" || header.kid === "")
            return yield* new InvalidToken({ reason: "unknown_kid" })
          const key = yield* keys.verificationKey(header.kid)
          if (Option.isNone(key) || key.value.alg !== header.alg)
            return yield* new InvalidToken({ reason: "unknown_kid" })
          const now = yield* Clock.currentTimeMillis
          const { payload } = yield* Effect.tryPromise({
            try: () =>
              jwtVerify(token, key.value.publicKey, {
                algorithms: [SIGNING_ALG],
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
          return yield* decodeClaims(payload).pipe(
            Effect.mapError(() => new InvalidToken({ reason: "invalid_claims" })),
          )
        })

        return Tokens.of({ issueAccessToken, verifyAccessToken })
      }),
    )
}

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
