import { Context, Effect, Layer, Option } from "effect"
import { Db } from "../../shared/Db.ts"
import { Outbox } from "../../shared/Outbox.ts"
import * as Problem from "../../shared/Problem.ts"
import {
  type EmailTaken,
  InvalidCredentials,
  type ServiceUnavailable,
  type TooManyRequests,
  type ValidationFailed,
} from "../../shared/Problem.ts"
import { IdentityClient, type IdentityUser } from "./IdentityClient.ts"
import { LoginThrottle } from "./LoginThrottle.ts"
import { Sessions, type TokenResponse } from "./Sessions.ts"

/** Where a sign-in comes from (the client address is throttled and audited). */
export interface ClientInfo {
  readonly ip: string | null
  readonly userAgent: string | null
}

const invalidCredentials = () => new InvalidCredentials({ detail: "wrong email or password" })

/** Registration and password sign-in: throttled, audited, answered the same for unknown email and wrong password. */
export class SignIn extends Context.Service<
  SignIn,
  {
    /** Creates an account through identity (which mails the verification link). */
    register(
      input: { readonly email: string; readonly password: string; readonly name: string },
      client: ClientInfo,
    ): Effect.Effect<IdentityUser, EmailTaken | ValidationFailed | TooManyRequests | ServiceUnavailable>
    /** Checks the password through identity and starts a session. */
    login(
      input: { readonly email: string; readonly password: string },
      client: ClientInfo,
    ): Effect.Effect<TokenResponse, InvalidCredentials | TooManyRequests | ServiceUnavailable>
    /** Starts a session for a user another flow has authenticated (OIDC), with the same audit event. */
    startSession(
      user: IdentityUser,
      client: ClientInfo,
      method: string,
    ): Effect.Effect<TokenResponse, InvalidCredentials | ServiceUnavailable>
  }
>()("auth/SignIn") {
  /** Sign-in over identity, the throttle, sessions and the outbox. */
  static readonly layer = Layer.effect(
    SignIn,
    Effect.gen(function* () {
      const identity = yield* IdentityClient
      const throttle = yield* LoginThrottle
      const sessions = yield* Sessions
      const outbox = yield* Outbox
      const db = yield* Db

      const unavailable = Problem.unavailable("could not record a sign-in", "sign-in is unavailable, retry later")
      // A failed attempt writes nothing but its audit event.
      const record = (type: string, subject: string, data: Record<string, unknown>) =>
        db
          .transaction(outbox.publish({ type, subject, data }))
          .pipe(Effect.asVoid, Effect.catchTag("DbError", unavailable))

      const register = Effect.fn("SignIn.register")(function* (
        input: { readonly email: string; readonly password: string; readonly name: string },
        client: ClientInfo,
      ) {
        yield* throttle.admitAddress(client.ip)
        return yield* identity.createUser(input)
      })

      const startSession = Effect.fn("SignIn.startSession")(function* (
        user: IdentityUser,
        client: ClientInfo,
        method: string,
      ) {
        if (user.status !== "active") return yield* invalidCredentials()
        // The session and its audit event commit together (one round trip less per login).
        const session = yield* db
          .transaction(
            Effect.gen(function* () {
              const started = yield* sessions.start({ userId: user.id, ip: client.ip, userAgent: client.userAgent })
              yield* outbox.publish({
                type: "auth.login.succeeded",
                subject: user.id,
                data: {
                  actor: user.id,
                  userId: user.id,
                  sessionId: started.sessionId,
                  method,
                },
              })
              return started
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        const { sessionId: _, ...tokens } = session
        return tokens
      })

      const login = Effect.fn("SignIn.login")(function* (
        input: { readonly email: string; readonly password: string },
        client: ClientInfo,
      ) {
        yield* throttle.admitAddress(client.ip)
        // A disabled account with the right password is refused like a wrong password (nothing to enumerate).
        const { value: user, delaySeconds } = yield* throttle.guard(
          input.email,
          Effect.map(identity.verifyCredentials(input.email, input.password), (found) => ({
            ok: Option.isSome(found) && found.value.status === "active",
            value: found,
          })),
        )
        if (Option.isNone(user) || user.value.status !== "active") {
          // The audit trail names the targeted account when there is one (looked up on every failure alike).
          const target = Option.isSome(user)
            ? user
            : yield* identity.findByEmail(input.email).pipe(Effect.orElseSucceed(() => Option.none<IdentityUser>()))
          yield* record("auth.login.failed", Option.match(target, { onNone: () => "unknown", onSome: (u) => u.id }), {
            actor: null,
            userId: Option.match(target, { onNone: () => null, onSome: (u) => u.id }),
            email: input.email.trim().toLowerCase().slice(0, 254),
            reason: Option.isSome(user) ? "account_inactive" : "invalid_credentials",
            throttledForSeconds: delaySeconds,
          })
          return yield* invalidCredentials()
        }
        return yield* startSession(user.value, client, "password")
      })

      return SignIn.of({ register, login, startSession })
    }),
  )
}
