import { Context, Effect, Layer, Metric } from "effect"
import type * as AccessToken from "../../shared/AccessToken.ts"
import {
  type AuthenticatorOptions,
  authenticator,
  type JwksOptions,
  Refused,
  remoteKeys,
} from "../../shared/Authentication.ts"
import type { ServiceUnavailable } from "../../shared/Problem.ts"

const refusals = Metric.counter("gateway_auth_refusals_total", {
  description: "Requests refused at the gateway for a missing, invalid or revoked access token",
  incremental: true,
})

const BEARER = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i

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
  static readonly layer = (options: AuthenticatorOptions & { readonly jwks: JwksOptions }) =>
    Layer.effect(
      EdgeAuth,
      Effect.gen(function* () {
        const check = yield* authenticator(remoteKeys(options.jwks), options)
        const authenticate = Effect.fnUntraced(
          function* (authorization: string | undefined) {
            if (authorization === undefined || authorization === "") return yield* new Refused({ reason: "missing" })
            const token = BEARER.exec(authorization)?.[1]
            if (token === undefined) return yield* new Refused({ reason: "malformed" })
            return yield* check(token)
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
