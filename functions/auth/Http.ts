import { Effect, Layer } from "effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { ClientIp } from "../../shared/RequestContext.ts"
import { validationProblems } from "../../shared/Server.ts"
import { AuthApi } from "./Api.ts"
import { OidcLogin } from "./OidcLogin.ts"
import { Sessions, type TokenResponse } from "./Sessions.ts"
import { type ClientInfo, SignIn } from "./SignIn.ts"
import { SigningKeys } from "./SigningKeys.ts"

// The caller as sign-in sees it: the client address and its user agent.
const clientOf = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.map(
    Effect.service(ClientIp),
    (ip): ClientInfo => ({ ip: ip === "" ? null : ip, userAgent: request.headers["user-agent"] ?? null }),
  )

const BINDING_COOKIE = "oidc_attempt"

// The OIDC attempt's browser binding: HttpOnly, only sent back to the OIDC routes, Lax so the provider's redirect
// (a top-level GET) carries it; Secure whenever the public URL is https.
const bindingCookie = (value: string, secure: boolean, maxAge = 600) =>
  `${BINDING_COOKIE}=${value}; Path=/api/v1/auth/oidc; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}`

// Token responses are never stored by browsers or proxies (RFC 6749 §5.1).
const tokenResponse = (tokens: TokenResponse) =>
  HttpServerResponse.jsonUnsafe(tokens, { headers: { "cache-control": "no-store", pragma: "no-cache" } })

/** Handlers of registration, sign-in and sessions. */
export const SessionsHttp = HttpApiBuilder.group(
  AuthApi,
  "sessions",
  Effect.fn(function* (handlers) {
    const signIn = yield* SignIn
    const sessions = yield* Sessions
    return handlers
      .handle("register", ({ payload, request }) =>
        Effect.flatMap(clientOf(request), (client) => signIn.register(payload, client)),
      )
      .handle("login", ({ payload, request }) =>
        Effect.flatMap(clientOf(request), (client) => Effect.map(signIn.login(payload, client), tokenResponse)),
      )
      .handle("refresh", ({ payload }) => Effect.map(sessions.refresh(payload.refresh_token), tokenResponse))
      .handle("logout", ({ payload }) => sessions.logout(payload.refresh_token))
      .handle("logoutAll", () =>
        Effect.flatMap(Effect.service(CurrentUser), (user) =>
          Effect.asVoid(sessions.revokeUser(user.userId, "logout_all")),
        ),
      )
  }),
)

/** Handlers of the OIDC sign-in (redirect to the provider, then its redirect back). */
export const OidcHttp = HttpApiBuilder.group(
  AuthApi,
  "oidc",
  Effect.fn(function* (handlers) {
    const oidc = yield* OidcLogin
    return handlers
      .handle("providers", () => Effect.succeed({ items: oidc.providers.map((name) => ({ name })) }))
      .handle("authorize", ({ params, query }) =>
        Effect.map(oidc.authorize(params.provider, query.returnTo), ({ url, binding }) =>
          HttpServerResponse.redirect(url, { status: 302, headers: { "cache-control": "no-store" } }).pipe(
            HttpServerResponse.setHeader("set-cookie", bindingCookie(binding, oidc.secureCookies)),
          ),
        ),
      )
      .handle("callback", ({ params, request }) =>
        Effect.flatMap(clientOf(request), (client) =>
          oidc
            .callback(
              params.provider,
              new URL(request.url, "http://callback").searchParams,
              request.cookies[BINDING_COOKIE],
              client,
            )
            .pipe(
              // A browser app asked to come back: the tokens wait under a one-time code in the fragment, which is
              // never sent to a server nor in a Referer (a refusal comes back there too, as its detail); otherwise
              // the token response itself.
              Effect.flatMap((outcome) => {
                const back = (fragment: string) =>
                  HttpServerResponse.empty({
                    status: 303,
                    headers: { location: `${outcome.returnTo}#${fragment}`, "cache-control": "no-store" },
                  })
                if ("refused" in outcome)
                  return Effect.succeed(back(`oidc_error=${encodeURIComponent(outcome.refused)}`))
                return outcome.returnTo === undefined
                  ? Effect.succeed(tokenResponse(outcome.tokens))
                  : Effect.map(oidc.handOff(outcome.tokens), (code) => back(`oidc_code=${code}`))
              }),
              Effect.map((response) =>
                HttpServerResponse.setHeader(response, "set-cookie", bindingCookie("", oidc.secureCookies, 0)),
              ),
            ),
        ),
      )
      .handle("exchange", ({ payload }) => Effect.map(oidc.exchange(payload.code), tokenResponse))
  }),
)

/** Handler of the JWKS. */
export const KeysHttp = HttpApiBuilder.group(
  AuthApi,
  "keys",
  Effect.fn(function* (handlers) {
    const keys = yield* SigningKeys
    return handlers.handle("jwks", () => keys.jwks())
  }),
)

/** Auth's HTTP routes, ready to serve; needs the domain services and the Authentication middleware. */
export const HttpLive = HttpApiBuilder.layer(AuthApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([SessionsHttp, OidcHttp, KeysHttp]),
  Layer.provide(validationProblems),
)
