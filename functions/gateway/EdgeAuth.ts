import { Context, Effect, Layer, Metric } from "effect"
import type * as AccessToken from "../../shared/access/AccessToken.ts"
import {
  type AuthenticatorOptions,
  bearerToken,
  type JwksOptions,
  Refused,
  remoteKeys,
  Verifier,
} from "../../shared/access/Authentication.ts"
import type { ServiceUnavailable } from "../../shared/Problem.ts"

const refusals = Metric.counter("gateway_auth_refusals_total", {
  description: "Requests refused at the gateway for a missing, invalid or revoked access token",
  incremental: true,
})

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
    /**
     * The claims when memory alone knows the header's token is accepted (verified before, session's "not revoked"
     * still reused), without an effect; undefined otherwise (then `authenticate`, which also counts refusals).
     */
    authenticateNow(authorization: string | undefined): AccessToken.AccessClaims | undefined
  }
>()("gateway/EdgeAuth") {
  /** Verifies with the process's `Verifier` (see `verifier` for the gateway's). */
  static readonly layer = Layer.effect(
    EdgeAuth,
    Effect.gen(function* () {
      const verifier = yield* Verifier
      const authenticate = Effect.fnUntraced(
        function* (authorization: string | undefined) {
          const token = bearerToken(authorization)
          if (token === undefined) return yield* new Refused({ reason: "malformed" })
          if (token === "") return yield* new Refused({ reason: "missing" })
          return yield* verifier.authenticate(token)
        },
        Effect.tapError((error) =>
          error._tag === "Refused"
            ? Metric.update(Metric.withAttributes(refusals, { reason: error.reason }), 1)
            : Effect.void,
        ),
      )
      const authenticateNow = (authorization: string | undefined) => {
        const token = bearerToken(authorization)
        return token === undefined || token === "" ? undefined : verifier.authenticateNow(token)
      }
      return EdgeAuth.of({ authenticate, authenticateNow })
    }),
  )

  /** The gateway's verifier: auth's JWKS over HTTP, a "not revoked" answer reused briefly; needs `SessionRevocations`. */
  static readonly verifier = (options: AuthenticatorOptions & { readonly jwks: JwksOptions }) =>
    Verifier.layerWithKeys(remoteKeys(options.jwks), options)
}
