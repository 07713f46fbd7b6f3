import { createHash, randomBytes, randomUUID } from "node:crypto"
import { Clock, Context, Effect, Layer, Option } from "effect"
import { SessionRevocations } from "../../shared/access/SessionRevocations.ts"
import { Db, type DbError } from "../../shared/Db.ts"
import { Outbox } from "../../shared/Outbox.ts"
import * as Problem from "../../shared/Problem.ts"
import { type ServiceUnavailable, TokenReused, Unauthorized } from "../../shared/Problem.ts"
import { SessionsRepo } from "./SessionsRepo.ts"
import { Tokens } from "./Tokens.ts"
import { sessionRevoked } from "./TokenVerification.ts"

/** The OAuth 2.0 token response of login and refresh. */
export interface TokenResponse {
  readonly access_token: string
  readonly token_type: "Bearer"
  readonly expires_in: number
  readonly refresh_token: string
}

/** Why sessions end (stored on the session and sent in `auth.session.revoked`). */
export type RevokeReason =
  | "logout"
  | "logout_all"
  | "token_reused"
  | "password_changed"
  | "password_reset"
  | "account_disabled"
  | "account_deleted"

/** Session lifetimes: refresh tokens slide by `refreshTtlSeconds` on every rotation. */
export interface SessionsOptions {
  readonly refreshTtlSeconds: number
  /** How long a superseded token still rotates (two tabs refreshing at once) before reuse revokes the family. */
  readonly reuseGraceSeconds: number
  /** Access-token lifetime: how long a revocation must be remembered at the edge. */
  readonly accessTtlSeconds: number
}

// Opaque refresh tokens: 256 random bits; only their SHA-256 is stored.
const newRefreshToken = () => randomBytes(32).toString("base64url")
const hashOf = (token: string) => createHash("sha256").update(token).digest()

/** Verifiers accept tokens up to 5 s past `exp`; clocks of machines differ too. */
export const REVOCATION_MARGIN_SECONDS = 60

const invalidRefresh = () => new Unauthorized({ detail: "the refresh token is invalid, expired or revoked" })

/** Sessions as refresh-token families: start, rotate with reuse detection, and end (revocation reaches the edge). */
export class Sessions extends Context.Service<
  Sessions,
  {
    /** Starts a session for a signed-in user: a new family, its first refresh token and an access token. */
    start(input: {
      readonly userId: string
      readonly ip: string | null
      readonly userAgent: string | null
    }): Effect.Effect<TokenResponse & { readonly sessionId: string }, ServiceUnavailable>
    /**
     * Rotates: the presented token is superseded and a new pair issued. A superseded token presented again within
     * the grace window rotates too; after it, the whole family is revoked and the answer is `token_reused`.
     */
    refresh(token: string): Effect.Effect<TokenResponse, Unauthorized | TokenReused | ServiceUnavailable>
    /** Ends the session of a refresh token (any token of the family); unknown tokens are ignored. */
    logout(token: string): Effect.Effect<void, ServiceUnavailable>
    /** Ends every session of a user, except `keep` when given; returns how many ended. */
    revokeUser(
      userId: string,
      reason: RevokeReason,
      options?: { readonly keep?: string },
    ): Effect.Effect<number, ServiceUnavailable>
  }
>()("auth/Sessions") {
  /** Sessions over the repository, the outbox and the shared revocation list. */
  static readonly layer = (options: SessionsOptions) =>
    Layer.effect(
      Sessions,
      Effect.gen(function* () {
        const db = yield* Db
        const repo = yield* SessionsRepo
        const tokens = yield* Tokens
        const outbox = yield* Outbox
        const revocations = yield* SessionRevocations
        const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))
        const later = (from: Date, seconds: number) => new Date(from.getTime() + seconds * 1000)

        const pair = (userId: string, sessionId: string, refreshToken: string) =>
          Effect.map(
            tokens.issueAccessToken({ sub: userId, sid: sessionId }),
            (access): TokenResponse => ({
              access_token: access.token,
              token_type: "Bearer",
              expires_in: access.expiresIn,
              refresh_token: refreshToken,
            }),
          )

        // How long verifiers must remember a revoked session: the longest access token of it, plus the clock skew they
        // tolerate and a margin for skew between machines.
        const rememberSeconds = options.accessTtlSeconds + REVOCATION_MARGIN_SECONDS

        // Tells every verifier, inside the caller's transaction: if the announcement fails, nothing is revoked and the
        // retry does it all again; if the commit fails after it, sessions are refused early (the safe side).
        const announce = (sessionIds: ReadonlyArray<string>) =>
          sessionIds.length === 0 ? Effect.void : revocations.revoke(sessionIds, rememberSeconds)

        // Revokes in the caller's transaction, records why (auth.session.revoked) and announces it.
        const revokeRows = (
          input: Parameters<typeof repo.revoke>[0] & { readonly reason: RevokeReason },
        ): Effect.Effect<ReadonlyArray<string>, DbError | ServiceUnavailable> =>
          Effect.gen(function* () {
            const revoked = yield* repo.revoke(input)
            yield* Effect.forEach(
              revoked,
              (session) =>
                outbox.publish({
                  type: sessionRevoked.type,
                  subject: session.userId,
                  data: {
                    sessionId: session.id,
                    userId: session.userId,
                    reason: input.reason,
                    ttlSeconds: rememberSeconds,
                  },
                }),
              { discard: true },
            )
            yield* announce(revoked.map((session) => session.id))
            return revoked.map((session) => session.id)
          })

        // Revocations survive a restart of an instance that keeps them in memory (no Redis): the recent ones are told
        // again at start (with Redis this repeats what is there).
        yield* repo.revokedSince(new Date((yield* Clock.currentTimeMillis) - rememberSeconds * 1000)).pipe(
          Effect.flatMap(announce),
          Effect.catch((error) =>
            Effect.logWarning("could not re-announce recent revocations", { error: error.message }),
          ),
        )

        const start = Effect.fn("Sessions.start")(function* (input: {
          readonly userId: string
          readonly ip: string | null
          readonly userAgent: string | null
        }) {
          const at = yield* now
          const id = randomUUID()
          const refreshToken = newRefreshToken()
          yield* repo
            .insert({
              id,
              userId: input.userId,
              tokenHash: hashOf(refreshToken),
              now: at,
              expiresAt: later(at, options.refreshTtlSeconds),
              ip: input.ip,
              userAgent: input.userAgent?.slice(0, 512) ?? null,
            })
            .pipe(Effect.catchTag("DbError", unavailable))
          return { ...(yield* pair(input.userId, id, refreshToken)), sessionId: id }
        })

        type Decision =
          | { readonly _tag: "Rotated"; readonly userId: string; readonly sessionId: string; readonly token: string }
          | { readonly _tag: "Invalid" }
          | { readonly _tag: "Reused"; readonly revoked: ReadonlyArray<string> }

        const refresh = Effect.fn("Sessions.refresh")(function* (token: string) {
          const at = yield* now
          const decision = yield* db
            .transaction(
              Effect.gen(function* () {
                const found = yield* repo.findTokenForUpdate(hashOf(token))
                if (Option.isNone(found)) return { _tag: "Invalid" } as Decision
                const row = found.value
                const dead = row.sessionRevokedAt !== null || row.expiresAt <= at || row.sessionExpiresAt <= at
                if (dead) return { _tag: "Invalid" } as Decision
                if (
                  row.supersededAt !== null &&
                  at.getTime() - row.supersededAt.getTime() > options.reuseGraceSeconds * 1000
                ) {
                  yield* outbox.publish({
                    type: "auth.token.reused",
                    subject: row.userId,
                    data: {
                      sessionId: row.sessionId,
                      userId: row.userId,
                      supersededAt: row.supersededAt.toISOString(),
                    },
                  })
                  const revoked = yield* revokeRows({ sessionIds: [row.sessionId], reason: "token_reused", now: at })
                  return { _tag: "Reused", revoked } as Decision
                }
                const next = newRefreshToken()
                yield* repo.rotate({
                  sessionId: row.sessionId,
                  tokenHash: hashOf(next),
                  now: at,
                  expiresAt: later(at, options.refreshTtlSeconds),
                })
                return { _tag: "Rotated", userId: row.userId, sessionId: row.sessionId, token: next } as Decision
              }),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          switch (decision._tag) {
            case "Invalid":
              return yield* invalidRefresh()
            case "Reused":
              yield* Effect.logWarning("refresh token reused after rotation; session revoked", {
                sessions: decision.revoked,
              })
              return yield* new TokenReused({ detail: "this refresh token was already used; the session has ended" })
            case "Rotated":
              return yield* pair(decision.userId, decision.sessionId, decision.token)
          }
        })

        const logout = Effect.fn("Sessions.logout")(function* (token: string) {
          const at = yield* now
          yield* db
            .transaction(
              Effect.gen(function* () {
                const found = yield* repo.findTokenForUpdate(hashOf(token))
                if (Option.isNone(found)) return
                const revoked = yield* revokeRows({ sessionIds: [found.value.sessionId], reason: "logout", now: at })
                // Announced again when it was revoked already: logging out again repairs a lost announcement.
                if (revoked.length === 0) yield* announce([found.value.sessionId])
              }),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
        })

        const revokeUser = Effect.fn("Sessions.revokeUser")(function* (
          userId: string,
          reason: RevokeReason,
          options?: { readonly keep?: string },
        ) {
          const at = yield* now
          const revoked = yield* db
            .transaction(
              revokeRows({
                userId,
                reason,
                now: at,
                ...(options?.keep === undefined ? {} : { exceptSessionId: options.keep }),
              }),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          return revoked.length
        })

        return Sessions.of({ start, refresh, logout, revokeUser })
      }),
    )
}

const unavailable = Problem.unavailable("sessions unavailable", "sessions are unavailable, retry later")
