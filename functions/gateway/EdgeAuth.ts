import { Context, Effect, Layer, Metric, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import * as AccessToken from "../../shared/AccessToken.ts"
import type { JwksOptions } from "../../shared/Authentication.ts"
import { remoteKeys } from "../../shared/Authentication.ts"
import type { ServiceUnavailable } from "../../shared/Problem.ts"
import * as Problem from "../../shared/Problem.ts"
import { SessionRevocations } from "../../shared/SessionRevocations.ts"

/** A request refused at the edge for its credential; `reason` is for logs and metrics, never for the client. */
export class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

const refusals = Metric.counter("gateway_auth_refusals_total", {
  description: "Requests refused at the gateway for a missing, invalid or revoked access token",
  incremental: true,
})

const BEARER = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i

/** The 401 problem of a refusal: `WWW-Authenticate: Bearer` without a credential, `error="invalid_token"` with one. */
export const challenge = (reason: string) =>
  reason === "missing"
    ? HttpServerResponse.setHeader(
        Problem.response(401, "a bearer access token is required"),
        "www-authenticate",
        "Bearer",
      )
    : HttpServerResponse.setHeader(
        Problem.response(401, "the access token is invalid, expired or revoked"),
        "www-authenticate",
        'Bearer error="invalid_token"',
      )

/**
 * Verification of the caller's access token at the edge, with the kernel's verifier (EdDSA only, kid, issuer,
 * audience, lifetime, claims) against auth's JWKS (cached; refetched for an unknown kid at most every 10 s) and the
 * shared session revocations (no database call per request).
 */
export class EdgeAuth extends Context.Service<
  EdgeAuth,
  {
    /** The verified claims of the `Authorization` header's bearer token. */
    authenticate(
      authorization: string | undefined,
    ): Effect.Effect<AccessToken.AccessClaims, Refused | ServiceUnavailable>
  }
>()("gateway/EdgeAuth") {
  /** Verifies against auth's JWKS over HTTP; needs `SessionRevocations`. */
  static readonly layer = (options: AccessToken.VerifyOptions & { readonly jwks: JwksOptions }) =>
    Layer.effect(
      EdgeAuth,
      Effect.gen(function* () {
        const revocations = yield* SessionRevocations
        const verify = AccessToken.cachedVerifier(remoteKeys(options.jwks), options)
        const authenticate = Effect.fn("EdgeAuth.authenticate")(
          function* (authorization: string | undefined) {
            if (authorization === undefined || authorization === "") return yield* new Refused({ reason: "missing" })
            const token = BEARER.exec(authorization)?.[1]
            if (token === undefined) return yield* new Refused({ reason: "malformed" })
            const claims = yield* verify(token).pipe(
              Effect.catchTag("InvalidToken", (error) => Effect.fail(new Refused({ reason: error.reason }))),
            )
            if (yield* revocations.isRevoked(claims.sid)) return yield* new Refused({ reason: "revoked" })
            return claims
          },
          Effect.tapError((error) =>
            error._tag === "Refused"
              ? Metric.update(Metric.withAttributes(refusals, { reason: error.reason }), 1)
              : Effect.void,
          ),
        )
        return EdgeAuth.of({ authenticate })
      }),
    )
}
