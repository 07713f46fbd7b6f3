import { Context, Effect, Layer, Metric, Option, Redacted, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { createLocalJWKSet, errors } from "jose"
import { makeLocal } from "../Cache.ts"
import * as Problem from "../Problem.ts"
import { ServiceUnavailable, Unauthorized } from "../Problem.ts"
import { Actor } from "../RequestContext.ts"
import * as AccessToken from "./AccessToken.ts"
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
 * Keys from auth's JWKS over HTTP: fetched on first use, cached, fetched again for an unknown kid at most once per
 * cooldown. An unreachable or broken JWKS is ServiceUnavailable, never a refusal. Fetched with `node:http` and selected
 * with jose's local key set, not jose's remote one: that one makes a `Headers` and calls the global `fetch`, which
 * load Node's bundled undici (20-90 ms of one core) on the way to the first answer of a signed-in route.
 */
export const remoteKeys = (options: JwksOptions): AccessToken.KeyResolver => {
  const cooldownMs = options.cooldownMs ?? 10_000
  const cacheMaxAgeMs = options.cacheMaxAgeMs ?? 600_000
  const timeoutMs = options.timeoutMs ?? 3_000
  let current: { readonly keys: ReturnType<typeof createLocalJWKSet>; readonly at: number } | undefined
  // Callers arriving while a fetch is under way share it.
  let fetching: Promise<NonNullable<typeof current>> | undefined
  const reload = () => {
    fetching ??= getJson(options.url, timeoutMs)
      .then((jwks) => {
        current = { keys: createLocalJWKSet(jwks as never), at: Date.now() }
        return current
      })
      .finally(() => {
        fetching = undefined
      })
    return fetching
  }
  const keySet = async (header: { readonly alg: string; readonly kid: string }) => {
    const set = current !== undefined && Date.now() - current.at < cacheMaxAgeMs ? current : await reload()
    try {
      return await set.keys(header)
    } catch (error) {
      // A kid it does not know yet (auth rotated): one fetch per cooldown, so unknown kids cannot hammer auth.
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - set.at < cooldownMs) throw error
      return await (await reload()).keys(header)
    }
  }
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

/** The JSON body of a 200 answer to a GET (no redirects followed), within `timeoutMs` and 1 MiB. */
const getJson = (url: URL, timeoutMs: number): Promise<unknown> => {
  // Not `import()`: Node's ESM facade of a builtin reads every export, and node:http's lazy ones load undici. https
  // only where the JWKS is served over TLS (node:tls stays unloaded otherwise).
  const { get } = process.getBuiltinModule(url.protocol === "https:" ? "node:https" : "node:http")
  return new Promise((resolve, reject) => {
    const request = get(
      url,
      { timeout: timeoutMs, headers: { accept: "application/json, application/jwk-set+json" } },
      (response) => {
        if (response.statusCode !== 200) {
          response.resume()
          reject(new Error(`JWKS answered ${response.statusCode}`))
          return
        }
        const chunks: Array<Buffer> = []
        let size = 0
        response.on("data", (chunk: Buffer) => {
          size += chunk.length
          if (size > 1024 * 1024) request.destroy(new Error("JWKS larger than 1 MiB"))
          else chunks.push(chunk)
        })
        response.on("error", reject)
        response.on("end", () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")))
          } catch (cause) {
            reject(new Error("JWKS is not JSON", { cause }))
          }
        })
      },
    )
    request.on("timeout", () => request.destroy(new Error(`JWKS did not answer within ${timeoutMs} ms`)))
    request.on("error", reject)
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
  Effect.gen(function* () {
    const revocations = yield* SessionRevocations
    const verify = yield* AccessToken.cachedVerifier(resolveKey, options)
    const memoMs = options.unrevokedMemoMs ?? 0
    // Only "not revoked" is remembered, from when the store was asked (a slow answer is not remembered for longer).
    const unrevoked = yield* makeLocal({
      capacity: 100_000,
      lookup: (sid: string) => revocations.isRevoked(sid),
      expiresAt: (revoked, _sid, askedAt) => (revoked ? 0 : askedAt + memoMs),
      // Read by `known` (the gateway's hot path): a busy session is asked again before its answer expires.
      refreshAhead: true,
    })
    const isRevoked = (sid: string) => (memoMs <= 0 ? revocations.isRevoked(sid) : unrevoked.get(sid))
    const authenticate = Effect.fnUntraced(function* (token: string) {
      if (token === "") return yield* new Refused({ reason: "missing" })
      const claims = yield* verify(token).pipe(
        Effect.catchTag("InvalidToken", (error) => Effect.fail(new Refused({ reason: error.reason }))),
      )
      if (yield* isRevoked(claims.sid)) return yield* new Refused({ reason: "revoked" })
      return claims
    })
    /**
     * The same answer from memory alone, without a fiber: the claims of a token accepted before whose session has a
     * "not revoked" answer still reused; undefined when anything would need a lookup (then `authenticate`).
     */
    const known = (token: string): AccessToken.AccessClaims | undefined => {
      if (memoMs <= 0) return undefined
      const claims = verify.known(token)
      return claims !== undefined && unrevoked.peekNow(claims.sid) === false ? claims : undefined
    }
    return Object.assign(authenticate, { known })
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

const BEARER = /^Bearer[ ]+([A-Za-z0-9\-._~+/]+=*)$/i

/** The token of an `Authorization: Bearer` header: "" when there is none, undefined when the header is malformed. */
export const bearerToken = (authorization: string | undefined): string | undefined =>
  authorization === undefined || authorization === "" ? "" : BEARER.exec(authorization)?.[1]

/**
 * The access-token verifier of a process (see `authenticator`), shared by the route guard, the bearer middleware and
 * the gateway's edge: a token verified once is remembered until its `exp` by all of them.
 */
export class Verifier extends Context.Service<
  Verifier,
  {
    authenticate(token: string): Effect.Effect<AccessToken.AccessClaims, Refused | ServiceUnavailable>
    /**
     * What `authenticate` would answer, when memory alone knows it is accepted (token verified before, session's "not
     * revoked" still reused); undefined when that needs a lookup or may be a refusal. For the gateway's hot path.
     */
    authenticateNow(token: string): AccessToken.AccessClaims | undefined
  }
>()("shared/Authentication/Verifier") {
  /** A verifier over a key resolver (auth resolves from its own key ring); needs `SessionRevocations`. */
  static readonly layerWithKeys = (resolveKey: AccessToken.KeyResolver, options: AuthenticatorOptions) =>
    Layer.effect(
      Verifier,
      Effect.map(authenticator(resolveKey, options), (authenticate) =>
        Verifier.of({ authenticate, authenticateNow: authenticate.known }),
      ),
    )
}

/** Counts a refusal and answers it with its 401 challenge. */
export const refuse = (reason: string) =>
  Effect.as(
    Effect.andThen(
      Metric.update(Metric.withAttributes(refusals, { reason }), 1),
      Effect.logInfo("access token refused", { reason }),
    ),
    challenge(reason),
  )

/**
 * The caller of an open route, when it sent a token: verified as the route guard verifies (an invalid token is a 401
 * answer in `refused`, none is anonymous: `userId` undefined). For routes anyone may call whose answer depends on who
 * asks (a draft its author may read, the events of a signed-in user).
 */
export const optionalCaller = (
  verifier: Verifier["Service"],
  authorization: string | undefined,
): Effect.Effect<
  | { readonly userId: string | undefined; readonly refused?: undefined }
  | { readonly userId?: undefined; readonly refused: HttpServerResponse.HttpServerResponse },
  ServiceUnavailable
> =>
  Effect.gen(function* () {
    const token = bearerToken(authorization)
    if (token === "") return { userId: undefined }
    if (token === undefined) return { refused: yield* refuse("malformed") }
    const verified = yield* Effect.result(verifier.authenticate(token))
    if (verified._tag === "Success") return { userId: verified.success.sub }
    const error = verified.failure
    if (error._tag === "Refused") return { refused: yield* refuse(error.reason) }
    return yield* error
  })

/** What a handler runs with once its caller is verified: `CurrentUser`, the `Actor` of its events, `user_id` in logs. */
export const asCaller = <A, E, R>(effect: Effect.Effect<A, E, R>, claims: AccessToken.AccessClaims) =>
  effect.pipe(
    Effect.provideService(CurrentUser, CurrentUser.of({ userId: claims.sub, sessionId: claims.sid, claims })),
    Effect.provideService(Actor, claims.sub),
    Effect.annotateLogs({ user_id: claims.sub }),
  )

/**
 * The bearer middleware over the process's `Verifier`. When the route guard already verified the caller (it runs
 * first on every declared route), its `CurrentUser` is used as it is: one verification per request.
 */
export const middleware = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const verifier = yield* Verifier
    return Authentication.of({
      bearer: (httpEffect, { credential }) =>
        Effect.flatMap(Effect.serviceOption(CurrentUser), (verified) =>
          Option.isSome(verified)
            ? Effect.provideService(httpEffect, CurrentUser, verified.value)
            : verifier.authenticate(Redacted.value(credential)).pipe(
                Effect.matchEffect({
                  onFailure: (error) => (error._tag === "Refused" ? refuse(error.reason) : Effect.fail(error)),
                  onSuccess: (claims) => asCaller(httpEffect, claims),
                }),
              ),
        ),
    })
  }),
)

/** The middleware and the verifier over a key resolver (auth itself resolves from its own key ring). */
export const layerWithKeys = (resolveKey: AccessToken.KeyResolver, options: AuthenticatorOptions) =>
  middleware.pipe(Layer.provideMerge(Verifier.layerWithKeys(resolveKey, options)))

/** The middleware and the verifier against auth's JWKS (`AUTH_JWKS_URL`); needs `SessionRevocations`. */
export const layer = (options: AuthenticationOptions & Pick<AuthenticatorOptions, "unrevokedMemoMs">) =>
  layerWithKeys(remoteKeys(options.jwks), options)
