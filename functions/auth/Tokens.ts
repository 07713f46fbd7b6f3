import { randomUUID } from "node:crypto"
import { Clock, Context, Effect, Layer } from "effect"
import { SignJWT } from "jose"
import type { AccessClaims, InvalidToken } from "../../shared/access/AccessToken.ts"
import * as AccessToken from "../../shared/access/AccessToken.ts"
import type { ServiceUnavailable } from "../../shared/Problem.ts"
import { SigningKeys } from "./SigningKeys.ts"

/** Access-token claims, the refusal error and its reasons live in the kernel (every service verifies tokens). */
export { AccessClaims, InvalidToken, InvalidTokenReason } from "../../shared/access/AccessToken.ts"

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

        const verifyOptions = { issuer: options.issuer, audience: options.audience, clockToleranceSeconds: tolerance }
        const verifyAccessToken = Effect.fn("Tokens.verifyAccessToken")((token: string) =>
          AccessToken.verify(token, keys.verificationKey, verifyOptions),
        )

        return Tokens.of({ issueAccessToken, verifyAccessToken })
      }),
    )
}
