import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { Context, Effect, Layer, Option, Schema } from "effect"
import * as oidc from "openid-client"
import { Cache, makeLocal } from "../../shared/Cache.ts"
import * as Problem from "../../shared/Problem.ts"
import {
  Conflict,
  Forbidden,
  type InvalidCredentials,
  NotFound,
  type ServiceUnavailable,
  Unauthorized,
  type ValidationFailed,
} from "../../shared/Problem.ts"
import { TokenResponse as TokenResponseSchema } from "./Api.ts"
import type { OidcProvider } from "./Config.ts"
import { IdentityClient, type IdentityUser } from "./IdentityClient.ts"
import { OidcLinksRepo } from "./OidcLinksRepo.ts"
import type { TokenResponse } from "./Sessions.ts"
import { type ClientInfo, SignIn } from "./SignIn.ts"

/** OIDC settings: the providers, and whether plain-http issuers are allowed (development and tests only). */
export interface OidcOptions {
  readonly providers: ReadonlyArray<OidcProvider>
  readonly allowHttp: boolean
  /** How long a started sign-in may take to come back (default 10 minutes). */
  readonly attemptTtlSeconds?: number
}

// What the authorize step remembers for the callback, keyed by `state` (single use).
const Attempt = Schema.Struct({
  provider: Schema.String,
  verifier: Schema.String,
  nonce: Schema.String,
  /** SHA-256 of the browser binding (a cookie set by `authorize`): the callback must come from the same browser. */
  binding: Schema.String,
  /** Where the browser lands afterwards (a path on this origin), with a one-time code instead of a JSON answer. */
  returnTo: Schema.optional(Schema.String),
})
const decodeAttempt = Schema.decodeUnknownOption(Schema.fromJsonString(Attempt))
const decodeTokens = Schema.decodeUnknownOption(Schema.fromJsonString(TokenResponseSchema))

// A one-time code lives this long: the browser redeems it right after the redirect.
const HANDOFF_TTL_SECONDS = 60

const digest = (value: string) => createHash("sha256").update(value).digest("base64url")
const sameDigest = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

/** How a provider's redirect back ended: a session, or (for a browser app's attempt) why not. */
export type CallbackOutcome =
  | { readonly tokens: TokenResponse; readonly returnTo: string | undefined }
  | { readonly refused: string; readonly returnTo: string }

const unknownAttempt = () =>
  new Unauthorized({ detail: "this sign-in attempt is unknown, used or expired; start again" })

/**
 * Sign-in with external OpenID Providers: authorization code flow with PKCE (S256), `state` and `nonce` checked,
 * accounts linked to users by (provider, subject), and on first sign-in by the email the provider has verified.
 */
export class OidcLogin extends Context.Service<
  OidcLogin,
  {
    /**
     * The provider URL to send the browser to, with a fresh state, nonce and PKCE challenge, and the binding the
     * browser must present on the callback (sent as an HttpOnly cookie): a redirect URL that leaks, or one an attacker
     * hands to a victim, cannot be redeemed by another browser.
     */
    authorize(
      provider: string,
      returnTo?: string,
    ): Effect.Effect<{ readonly url: URL; readonly binding: string }, NotFound | ServiceUnavailable>
    /** Whether the binding cookie must be `Secure` (always, unless plain-http development is allowed). */
    readonly secureCookies: boolean
    /** The configured providers' names (nothing else about them), for a sign-in form. */
    readonly providers: ReadonlyArray<string>
    /**
     * Completes a sign-in from the provider's redirect (its query string) and starts a session; `returnTo` is the
     * path the attempt was started with, if any. A browser app's attempt (with `returnTo`) that fails once known is
     * answered as `refused` (the problem's detail), so the app can say why; any other failure is the error.
     */
    callback(
      provider: string,
      query: URLSearchParams,
      binding: string | undefined,
      client: ClientInfo,
    ): Effect.Effect<
      CallbackOutcome,
      NotFound | Unauthorized | Forbidden | Conflict | InvalidCredentials | ValidationFailed | ServiceUnavailable
    >
    /**
     * Keeps a token response under a fresh one-time code (only its SHA-256 is stored, for 60 s): a browser app gets
     * the code in its URL's fragment and redeems it with `exchange`, so tokens never sit in a URL or history.
     */
    handOff(tokens: TokenResponse): Effect.Effect<string, ServiceUnavailable>
    /** Redeems a one-time code (once): the token response it was kept for. */
    exchange(code: string): Effect.Effect<TokenResponse, Unauthorized | ServiceUnavailable>
  }
>()("auth/OidcLogin") {
  /** OIDC sign-in; attempts are kept in the cache (Redis when configured, so any instance can take the callback). */
  static readonly layer = (options: OidcOptions) =>
    Layer.effect(
      OidcLogin,
      Effect.gen(function* () {
        const cache = yield* Cache
        const identity = yield* IdentityClient
        const links = yield* OidcLinksRepo
        const signIn = yield* SignIn
        const ttl = options.attemptTtlSeconds ?? 600

        const providerOf = (name: string) => {
          const provider = options.providers.find((p) => p.name === name)
          return provider
            ? Effect.succeed(provider)
            : Effect.fail(new NotFound({ detail: `no identity provider named ${JSON.stringify(name)}` }))
        }

        // Discovery once per provider, shared by concurrent first sign-ins and kept for the process's life; a failed
        // one is not kept, so the next sign-in tries again. One entry per configured provider.
        const discovered = yield* makeLocal({
          capacity: Math.max(1, options.providers.length),
          lookup: (provider: OidcProvider) =>
            Effect.tryPromise({
              try: () =>
                oidc.discovery(
                  new URL(provider.issuer),
                  provider.clientId,
                  undefined,
                  provider.clientSecret === undefined ? oidc.None() : oidc.ClientSecretPost(provider.clientSecret),
                  options.allowHttp ? { execute: [oidc.allowInsecureRequests] } : undefined,
                ),
              catch: (error) => error,
            }).pipe(
              Effect.catch((error) =>
                Problem.unavailable(
                  `identity provider ${provider.name} unreachable`,
                  `${provider.name} cannot be reached, retry later`,
                )(String(error)),
              ),
            ),
          expiresAt: () => Number.POSITIVE_INFINITY,
        })
        const configurationOf = (provider: OidcProvider) => discovered.get(provider)

        const cacheDown = Problem.unavailable(
          "sign-in attempts store unavailable",
          "sign-in is unavailable, retry later",
        )
        const linksDown = Problem.unavailable("account links unavailable", "sign-in is unavailable, retry later")

        const authorize = Effect.fn("OidcLogin.authorize")(function* (name: string, returnTo?: string) {
          const provider = yield* providerOf(name)
          const config = yield* configurationOf(provider)
          const verifier = oidc.randomPKCECodeVerifier()
          const [state, nonce] = [oidc.randomState(), oidc.randomNonce()]
          const challenge = yield* Effect.promise(() => oidc.calculatePKCECodeChallenge(verifier))
          const binding = randomBytes(32).toString("base64url")
          const attempt = { provider: name, verifier, nonce, binding: digest(binding), returnTo }
          yield* cache
            .set(`state:${state}`, JSON.stringify(attempt), { ttlSeconds: ttl })
            .pipe(Effect.catchTag("CacheError", cacheDown))
          const url = oidc.buildAuthorizationUrl(config, {
            redirect_uri: provider.redirectUri,
            scope: (provider.scopes ?? ["openid", "email", "profile"]).join(" "),
            state,
            nonce,
            code_challenge: challenge,
            code_challenge_method: "S256",
          })
          return { url, binding }
        })

        // The account behind a provider identity: linked before, or found (or created) by the verified email.
        const accountOf = (provider: string, claims: oidc.IDToken) =>
          Effect.gen(function* () {
            const linked = yield* links.findUser(provider, claims.sub)
            if (Option.isSome(linked)) {
              const user = yield* identity.findById(linked.value)
              if (Option.isSome(user)) return user.value
            }
            const email = typeof claims.email === "string" ? claims.email : undefined
            if (email === undefined || claims.email_verified !== true) {
              return yield* new Forbidden({
                detail: "the identity provider has not verified an email for this account",
              })
            }
            // Cut by code point, then trim: identity refuses names with edge spaces or over 100 characters.
            const given = typeof claims.name === "string" ? [...claims.name].slice(0, 100).join("").trim() : ""
            const name = given !== "" ? given : [...email].slice(0, 100).join("")
            const existing = yield* identity.findByEmail(email)
            // Linking to an account whose owner never proved the address would hand it to whoever registered it first
            // (its password would keep working): such an account must be verified, or signed into with its password.
            if (Option.isSome(existing) && !existing.value.emailVerified) {
              return yield* new Conflict({
                detail: "an account with this email exists but its address is not verified; sign in with its password",
              })
            }
            const user: IdentityUser = Option.isSome(existing)
              ? existing.value
              : yield* identity
                  .createUser({ email, name, emailVerified: true })
                  .pipe(
                    Effect.catchTag("EmailTaken", () =>
                      Effect.flatMap(identity.findByEmail(email), (raced) =>
                        Option.isSome(raced) ? Effect.succeed(raced.value) : Effect.fail(unknownAttempt()),
                      ),
                    ),
                  )
            yield* links.link({ provider, subject: claims.sub, userId: user.id, email })
            return user
          }).pipe(Effect.catchTag("DbError", linksDown))

        const callback = Effect.fn("OidcLogin.callback")(function* (
          name: string,
          query: URLSearchParams,
          binding: string | undefined,
          client: ClientInfo,
        ) {
          const provider = yield* providerOf(name)
          const error = query.get("error")
          const refusedByProvider = () =>
            new Unauthorized({
              detail: `the identity provider refused the sign-in (${(error ?? "").replace(/[^\w.-]/g, "").slice(0, 64)})`,
            })
          const state = query.get("state") ?? ""
          const stored =
            state === ""
              ? Option.none()
              : yield* cache.get(`state:${state}`).pipe(Effect.catchTag("CacheError", cacheDown))
          const attempt = Option.flatMap(stored, decodeAttempt)
          if (Option.isNone(attempt) || attempt.value.provider !== name) {
            return yield* error === null ? unknownAttempt() : refusedByProvider()
          }
          const { returnTo } = attempt.value
          const completed = Effect.gen(function* () {
            if (error !== null) {
              yield* cache.delete(`state:${state}`).pipe(Effect.catchTag("CacheError", cacheDown))
              return yield* refusedByProvider()
            }
            return yield* complete(provider, name, query, state, attempt.value, binding, client)
          })
          if (returnTo === undefined) return { tokens: yield* completed, returnTo }
          return yield* completed.pipe(
            Effect.map((tokens): CallbackOutcome => ({ tokens, returnTo })),
            Effect.catch((problem) =>
              Effect.succeed<CallbackOutcome>({ refused: problem.detail ?? "the sign-in failed", returnTo }),
            ),
          )
        })

        /** The rest of a callback once its attempt is known: the binding, the code exchange, the account, a session. */
        const complete = Effect.fn("OidcLogin.complete")(function* (
          provider: OidcProvider,
          name: string,
          query: URLSearchParams,
          state: string,
          attempt: typeof Attempt.Type,
          binding: string | undefined,
          client: ClientInfo,
        ) {
          if (binding === undefined || !sameDigest(digest(binding), attempt.binding)) {
            return yield* new Unauthorized({ detail: "this sign-in was started in another browser; start again here" })
          }
          yield* cache.delete(`state:${state}`).pipe(Effect.catchTag("CacheError", cacheDown))
          const config = yield* configurationOf(provider)
          const currentUrl = new URL(provider.redirectUri)
          currentUrl.search = query.toString()
          const tokens = yield* Effect.tryPromise({
            try: () =>
              oidc.authorizationCodeGrant(config, currentUrl, {
                pkceCodeVerifier: attempt.verifier,
                expectedState: state,
                expectedNonce: attempt.nonce,
                idTokenExpected: true,
              }),
            catch: (cause) => cause,
          }).pipe(
            Effect.catch((cause) =>
              Effect.andThen(
                Effect.logWarning("OIDC code exchange refused", { provider: name, error: String(cause) }),
                Effect.fail(
                  new Unauthorized({ detail: "the sign-in could not be completed with the identity provider" }),
                ),
              ),
            ),
          )
          const idToken = tokens.claims()
          if (!idToken) return yield* new Unauthorized({ detail: "the identity provider sent no ID token" })
          // Providers that keep email out of the ID token serve it at the userinfo endpoint (same subject enforced).
          const claims =
            typeof idToken.email === "string"
              ? idToken
              : {
                  ...idToken,
                  ...(yield* Effect.tryPromise({
                    try: () => oidc.fetchUserInfo(config, tokens.access_token, idToken.sub),
                    catch: (cause) => cause,
                  }).pipe(
                    Effect.catch((cause) =>
                      Effect.andThen(
                        Effect.logWarning("OIDC userinfo refused", { provider: name, error: String(cause) }),
                        Effect.fail(
                          new Unauthorized({ detail: "the identity provider did not share the account's email" }),
                        ),
                      ),
                    ),
                  )),
                  sub: idToken.sub,
                }
          const user = yield* accountOf(name, claims)
          return yield* signIn.startSession(user, client, `oidc:${name}`)
        })

        const handoffDown = Problem.unavailable(
          "sign-in codes store unavailable",
          "sign-in is unavailable, retry later",
        )
        const unknownCode = () =>
          new Unauthorized({ detail: "this sign-in code is unknown, used or expired; sign in again" })

        const handOff = Effect.fn("OidcLogin.handOff")(function* (tokens: TokenResponse) {
          const code = randomBytes(32).toString("base64url")
          yield* cache
            .set(`code:${digest(code)}`, JSON.stringify(tokens), { ttlSeconds: HANDOFF_TTL_SECONDS })
            .pipe(Effect.catchTag("CacheError", handoffDown))
          return code
        })

        const exchange = Effect.fn("OidcLogin.exchange")(function* (code: string) {
          const key = `code:${digest(code)}`
          // Taken (read and deleted in one step): of two redemptions of a code, even at once, one gets the tokens.
          const stored = yield* cache.take(key).pipe(Effect.catchTag("CacheError", handoffDown))
          const tokens = Option.flatMap(stored, decodeTokens)
          if (Option.isNone(tokens)) return yield* unknownCode()
          return tokens.value
        })

        return OidcLogin.of({
          authorize,
          callback,
          handOff,
          exchange,
          providers: options.providers.map((p) => p.name),
          secureCookies: !options.allowHttp,
        })
      }),
    )
}
