import { Context, Effect, Layer, Metric, Option, Redacted, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { createRemoteJWKSet, errors } from "jose"
import * as AccessToken from "./AccessToken.ts"
import * as Problem from "./Problem.ts"
import { ServiceUnavailable, Unauthorized } from "./Problem.ts"
import { Actor } from "./RequestContext.ts"
import { SessionRevocations } from "./SessionRevocations.ts"

/** The signed-in caller of the request being handled, from its verified access token. */
export class CurrentUser extends Context.Service<
  CurrentUser,
  {
    readonly userId: string
    readonly sessionId: string
    readonly claims: AccessToken.AccessClaims
  }
>()("shared/Authentication/CurrentUser") {}

/**
 * Bearer authentication of an HttpApi group or endpoint: verifies the caller's access JWT (signature against auth's
 * keys, issuer, audience, lifetime) and that its session is not revoked, then provides `CurrentUser`, sets `Actor`
 * and annotates logs with `user_id`. Refusals are 401 `unauthorized` with `WWW-Authenticate`; a key or revocation
 * store that cannot answer is 503.
 */
export class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: CurrentUser }>()(
  "shared/Authentication",
  { error: [Unauthorized, ServiceUnavailable], security: { bearer: HttpApiSecurity.bearer } },
) {}

/** Where auth's public keys are fetched from, and how the fetched set is cached. */
export interface JwksOptions {
  readonly url: URL
  /** Least time between two fetches caused by unknown kids (default 10 s). */
  readonly cooldownMs?: number
  /** How long a fetched key set is used before it is fetched again (default 10 min). */
  readonly cacheMaxAgeMs?: number
  /** How long one fetch may take (default 3 s). */
  readonly timeoutMs?: number
}

/** The settings of the middleware: what a token must carry, and where its keys are. */
export interface AuthenticationOptions extends AccessToken.VerifyOptions {
  readonly jwks: JwksOptions
}

/**
 * Keys from auth's JWKS over HTTP (jose's remote key set): fetched on first use, cached, fetched again for an unknown
 * kid at most once per cooldown. An unreachable or broken JWKS is ServiceUnavailable, never a refusal.
 */
export const remoteKeys = (options: JwksOptions): AccessToken.KeyResolver => {
  const keySet = createRemoteJWKSet(options.url, {
    cooldownDuration: options.cooldownMs ?? 10_000,
    cacheMaxAge: options.cacheMaxAgeMs ?? 600_000,
    timeoutDuration: options.timeoutMs ?? 3_000,
  })
  return Effect.fn("Authentication.jwksKey")(function* (kid: string) {
    return yield* Effect.tryPromise({
      try: () => keySet({ alg: AccessToken.ACCESS_TOKEN_ALG, kid }),
      catch: (error) => error,
    }).pipe(
      Effect.map((publicKey) => Option.some({ alg: AccessToken.ACCESS_TOKEN_ALG, publicKey })),
      Effect.catch((error) =>
        error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys
          ? Effect.succeed(Option.none<AccessToken.AccessTokenKey>())
          : Problem.unavailable(
              "auth's JWKS is unavailable",
              "sign-in state cannot be checked, retry later",
            )(String(error)),
      ),
    )
  })
}

/** A refused credential; `reason` goes to logs and metrics only, never to the client. */
export class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}

/** How `authenticator` treats revocations. */
export interface AuthenticatorOptions extends AccessToken.VerifyOptions {
  /**
   * How long a "not revoked" answer for a session is reused (default 0: the revocation store is asked every time).
   * The gateway reuses it briefly so that a busy session costs one Redis read per interval, not one per request;
   * a revocation still applies within this interval.
   */
  readonly unrevokedMemoMs?: number
}

/**
 * Checks a bearer token as every verifier does: the kernel's verifier (tokens it accepted are remembered until their
 * `exp`) and the session not revoked. Needs `SessionRevocations`; the gateway and the middleware both use it.
 * Untraced: it runs inside the request's span on every request, and its store read has a span of its own.
 */
export const authenticator = (resolveKey: AccessToken.KeyResolver, options: AuthenticatorOptions) =>
  Effect.map(Effect.service(SessionRevocations), (revocations) => {
    const verify = AccessToken.cachedVerifier(resolveKey, options)
    const memoMs = options.unrevokedMemoMs ?? 0
    const unrevoked = new Map<string, number>()
    const isRevoked = (sid: string) => {
      if (memoMs <= 0) return revocations.isRevoked(sid)
      const until = unrevoked.get(sid)
      if (until !== undefined && until > performance.now()) return Effect.succeed(false)
      // Valid from when the store was asked, not when it answered: a slow answer is not remembered for longer.
      const asked = performance.now()
      return Effect.tap(revocations.isRevoked(sid), (revoked) =>
        Effect.sync(() => {
          if (revoked) return unrevoked.delete(sid)
          if (unrevoked.size >= 100_000) unrevoked.clear()
          unrevoked.set(sid, asked + memoMs)
        }),
      )
    }
    return Effect.fnUntraced(function* (token: string) {
      if (token === "") return yield* new Refused({ reason: "missing" })
      const claims = yield* verify(token).pipe(
        Effect.catchTag("InvalidToken", (error) => Effect.fail(new Refused({ reason: error.reason }))),
      )
      if (yield* isRevoked(claims.sid)) return yield* new Refused({ reason: "revoked" })
      return claims
    })
  })

const refusals = Metric.counter("http_server_auth_refusals_total", {
  description: "Requests refused for a missing, invalid or revoked access token",
  incremental: true,
})

/**
 * The 401 problem of a refusal (RFC 6750 §3): `WWW-Authenticate: Bearer` when no credential came,
 * `error="invalid_token"` when one was refused. The gateway answers its edge refusals with it too.
 */
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

/** The middleware over a key resolver (auth itself resolves from its own key ring); needs `SessionRevocations`. */
export const layerWithKeys = (resolveKey: AccessToken.KeyResolver, options: AccessToken.VerifyOptions) =>
  Layer.effect(
    Authentication,
    Effect.gen(function* () {
      const authenticate = yield* authenticator(resolveKey, options)
      return Authentication.of({
        bearer: (httpEffect, { credential }) =>
          authenticate(Redacted.value(credential)).pipe(
            Effect.matchEffect({
              onFailure: (error) =>
                error._tag === "Refused"
                  ? Effect.as(
                      Effect.andThen(
                        Metric.update(Metric.withAttributes(refusals, { reason: error.reason }), 1),
                        Effect.logInfo("access token refused", { reason: error.reason }),
                      ),
                      challenge(error.reason),
                    )
                  : Effect.fail(error),
              onSuccess: (claims) =>
                httpEffect.pipe(
                  Effect.provideService(
                    CurrentUser,
                    CurrentUser.of({ userId: claims.sub, sessionId: claims.sid, claims }),
                  ),
                  Effect.provideService(Actor, claims.sub),
                  Effect.annotateLogs({ user_id: claims.sub }),
                ),
            }),
          ),
      })
    }),
  )

/** The middleware verifying against auth's JWKS (`AUTH_JWKS_URL`); needs `SessionRevocations`. */
export const layer = (options: AuthenticationOptions) => layerWithKeys(remoteKeys(options.jwks), options)
