import { Clock, Context, Effect, Layer, Option } from "effect"
import { Db, type DbError, UNIQUE_VIOLATION } from "../../shared/Db.ts"
import { Notifier } from "../../shared/Notifier.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { DEFAULT_LIMIT, decodeTimeCursor, pageOf } from "../../shared/Pagination.ts"
import * as Problem from "../../shared/Problem.ts"
import {
  EmailTaken,
  Forbidden,
  InvalidCredentials,
  InvalidToken,
  type LastAdmin,
  NotFound,
  type ServiceUnavailable,
  TooManyRequests,
  type ValidationFailed,
} from "../../shared/Problem.ts"
import { RateLimit, type Window } from "../../shared/RateLimit.ts"
import { PAGE_PATHS } from "./AccountLinks.ts"
import { AdminGuard } from "./AdminGuard.ts"
import { AppBaseUrl } from "./AppBaseUrl.ts"
import { EmailTokens, type TokenPurpose } from "./EmailTokens.ts"
import * as MailTemplates from "./MailTemplates.ts"
import { Passwords } from "./Passwords.ts"
import type { User, UserChanges, UserId, UserStatus } from "./User.ts"
import { UsersRepo } from "./UsersRepo.ts"

/** Tries of a status change that another status change of the same account keeps overtaking. */
const STATUS_CHANGE_ATTEMPTS = 3

/** Wrong current passwords accepted per account per hour on a password change. */
const PASSWORD_CHANGE_FAILURES_PER_HOUR = 5

/** The identity domain service: creates and reads users, publishing events through the outbox. */
export class Users extends Context.Service<
  Users,
  {
    /**
     * Creates a user; a password, when given, is hashed before the transaction opens. A verification mail goes out
     * unless `emailVerified` (an external identity provider has verified the address).
     */
    create(input: {
      readonly email: string
      readonly name: string
      readonly password?: string | undefined
      readonly emailVerified?: boolean | undefined
    }): Effect.Effect<User, EmailTaken | ServiceUnavailable>
    get(id: UserId): Effect.Effect<User, NotFound | ServiceUnavailable>
    getByEmail(email: string): Effect.Effect<User, NotFound | ServiceUnavailable>
    /** A page of users, newest first (`{items, nextCursor}`). */
    list(options: {
      readonly limit?: number | undefined
      readonly cursor?: string | undefined
      readonly email?: string | undefined
    }): Effect.Effect<{ items: Array<User>; nextCursor: string | null }, ValidationFailed | ServiceUnavailable>
    /** Spends a verification token: the email is verified (identity.email.verified). */
    verifyEmail(token: string): Effect.Effect<User, InvalidToken | ServiceUnavailable>
    /** Mails a reset link when an active account has this email; silent otherwise (no account enumeration). */
    requestPasswordReset(email: string): Effect.Effect<void, ServiceUnavailable>
    /** Spends a reset token and sets the new password (identity.password.reset: auth ends the sessions). */
    confirmPasswordReset(token: string, newPassword: string): Effect.Effect<void, InvalidToken | ServiceUnavailable>
    /**
     * Deactivates the account for good (status `deleted`) and publishes identity.user.deleted; LastAdmin when it is the
     * last active administrator.
     */
    remove(id: UserId): Effect.Effect<void, NotFound | LastAdmin | ServiceUnavailable>
    /** The account when `password` is right; `None` for an unknown email or a wrong password alike. */
    verifyCredentials(email: string, password: string): Effect.Effect<Option.Option<User>, ServiceUnavailable>
    /** An administrator changes a user; disabling the last active administrator is LastAdmin. */
    update(id: UserId, changes: UserChanges): Effect.Effect<User, NotFound | LastAdmin | ServiceUnavailable>
    /** The caller's own account; Forbidden when it is no longer active (disabled, deleted or unknown). */
    me(id: UserId): Effect.Effect<User, Forbidden | ServiceUnavailable>
    /** The caller changes their own profile (identity.user.updated). */
    updateMe(
      id: UserId,
      changes: { readonly name?: string | undefined },
    ): Effect.Effect<User, Forbidden | ServiceUnavailable>
    /**
     * The caller changes their password after proving the current one (identity.password.changed with
     * `keepSessionId`: auth ends the caller's other sessions).
     */
    changePassword(input: {
      readonly id: UserId
      readonly currentPassword: string
      readonly newPassword: string
      readonly keepSessionId: string
    }): Effect.Effect<void, InvalidCredentials | Forbidden | TooManyRequests | ServiceUnavailable>
    /**
     * The caller deactivates their own account: status `disabled`, identity.user.updated (auth ends every session);
     * LastAdmin when the caller is the last active administrator.
     */
    deactivate(id: UserId): Effect.Effect<void, Forbidden | LastAdmin | ServiceUnavailable>
    /** Mails the caller a new verification link (earlier ones stop working); nothing when already verified. */
    resendVerification(id: UserId): Effect.Effect<void, Forbidden | ServiceUnavailable>
  }
>()("identity/Users") {
  /** Users over the repository, the Db (transactions), the outbox and authz's last-administrator guard. */
  static readonly layer = Layer.effect(
    Users,
    Effect.gen(function* () {
      const db = yield* Db
      const repo = yield* UsersRepo
      const outbox = yield* Outbox
      const passwords = yield* Passwords
      const tokens = yield* EmailTokens
      const notifier = yield* Notifier
      const adminGuard = yield* AdminGuard
      // Keyed per account and clock hour (`password-change-failures:<id>:<hour>` under identity's prefix, the keys the
      // hand-rolled counter used): the window ends with the hour, whenever its first failure came.
      const passwordChangeFailures = (yield* RateLimit).limiter({
        keyPrefix: "identity:password-change-failures",
        points: PASSWORD_CHANGE_FAILURES_PER_HOUR,
        durationSeconds: 3600,
      })

      // Inside the caller's transaction: the token, the mail and the change commit together or not at all.
      const mailToken = (user: User, purpose: TokenPurpose) =>
        Effect.gen(function* () {
          const token = yield* tokens.issue(user.id, purpose)
          const base = yield* AppBaseUrl
          const content =
            purpose === "verify_email"
              ? MailTemplates.verification({
                  name: user.name,
                  link: MailTemplates.link(base, PAGE_PATHS.verifyEmail, token),
                })
              : MailTemplates.passwordReset({
                  name: user.name,
                  link: MailTemplates.link(base, PAGE_PATHS.resetPassword, token),
                })
          yield* notifier.send({ to: user.email, ...content })
        })

      const create = Effect.fn("Users.create")(function* (input: {
        readonly email: string
        readonly name: string
        readonly password?: string | undefined
        readonly emailVerified?: boolean | undefined
      }) {
        const passwordHash = input.password === undefined ? undefined : yield* passwords.hash(input.password)
        return yield* db
          .transaction(
            Effect.gen(function* () {
              const user = yield* repo.insert({
                email: input.email,
                name: input.name,
                passwordHash,
                emailVerified: input.emailVerified,
              })
              if (!user.emailVerified) yield* mailToken(user, "verify_email")
              yield* outbox.publish({
                type: "identity.user.created",
                subject: user.id,
                data: { userId: user.id, email: user.email, name: user.name, emailVerified: user.emailVerified },
              })
              return user
            }),
          )
          .pipe(
            Effect.catchTag(
              "DbError",
              (error): Effect.Effect<never, EmailTaken | ServiceUnavailable> =>
                error.code === UNIQUE_VIOLATION
                  ? Effect.fail(new EmailTaken({ detail: "an account with this email already exists" }))
                  : unavailable(error),
            ),
          )
      })

      const get = Effect.fn("Users.get")(function* (id: UserId) {
        const user = yield* repo.findById(id).pipe(Effect.catchTag("DbError", unavailable))
        if (user._tag === "None") return yield* new NotFound({ detail: `no user with id ${id}` })
        return user.value
      })

      // Writes a status change with its event; with `expectedVersion` only if no other status change came between.
      const writeStatus = (
        id: UserId,
        change: { readonly status: UserStatus; readonly name?: string | undefined },
        event: ReturnType<typeof outbox.publish>,
        expectedVersion?: number,
      ) =>
        db
          .transaction(
            Effect.gen(function* () {
              const written = yield* repo.setStatus(id, change, expectedVersion)
              if (written._tag === "Some") yield* event
              return written
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))

      /**
       * An account stops being active (disabled or deleted): authz first counts it out of the administrators, refusing
       * the last one (LastAdmin), then identity writes the change unless another status change came between (then it
       * starts over). authz is asked outside any transaction: none is held open across a call.
       */
      const leaveActive = <E>(
        id: UserId,
        change: { readonly status: "disabled" | "deleted"; readonly name?: string | undefined },
        options: {
          /** Whether the account's current status allows the change; `refused` otherwise. */
          readonly from: (status: UserStatus) => boolean
          readonly refused: E
          readonly event: ReturnType<typeof outbox.publish>
        },
      ): Effect.Effect<User, E | LastAdmin | ServiceUnavailable> =>
        Effect.gen(function* () {
          for (let attempt = 1; ; attempt++) {
            const current = yield* repo.statusOf(id).pipe(Effect.catchTag("DbError", unavailable))
            if (current._tag === "None" || !options.from(current.value.status))
              return yield* Effect.fail(options.refused)
            yield* adminGuard.retire(id, current.value.version + 1)
            const written = yield* writeStatus(id, change, options.event, current.value.version)
            if (written._tag === "Some") return written.value.user
            if (attempt >= STATUS_CHANGE_ATTEMPTS) {
              return yield* unavailable(`the status of ${id} kept changing concurrently`)
            }
          }
        })

      const updated = (id: UserId, changes: UserChanges) =>
        outbox.publish({ type: "identity.user.updated", subject: id, data: { userId: id, changes } })

      /**
       * Renames the account `write` finds (an administrator: any undeleted one; the caller: their own active one) and
       * publishes identity.user.updated in the same transaction; `missing` when it finds none. Without a name nothing
       * changes: the account as it is (`current`), without a write or an event.
       */
      const rename = <E>(
        id: UserId,
        name: string | undefined,
        options: {
          readonly write: (id: UserId, name: string) => Effect.Effect<Option.Option<User>, DbError>
          readonly current: Effect.Effect<User, E | ServiceUnavailable>
          readonly missing: E
        },
      ): Effect.Effect<User, E | ServiceUnavailable> =>
        Effect.gen(function* () {
          if (name === undefined) return yield* options.current
          const renamed = yield* db
            .transaction(
              Effect.gen(function* () {
                const user = yield* options.write(id, name)
                if (user._tag === "Some") yield* updated(id, { name })
                return user
              }),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          if (renamed._tag === "None") return yield* Effect.fail(options.missing)
          return renamed.value
        })

      const update = Effect.fn("Users.update")(function* (id: UserId, changes: UserChanges) {
        const notFound = new NotFound({ detail: `no user with id ${id}` })
        const undeleted = (status: UserStatus) => status !== "deleted"
        if (changes.status === "disabled") {
          return yield* leaveActive(
            id,
            { status: "disabled", name: changes.name },
            { from: undeleted, refused: notFound, event: updated(id, changes) },
          )
        }
        if (changes.status === "active") {
          const written = yield* writeStatus(id, { status: "active", name: changes.name }, updated(id, changes))
          if (written._tag === "None") return yield* notFound
          // Once active again, the account counts as an administrator again if it holds *.
          yield* adminGuard.reinstate(id, written.value.version)
          return written.value.user
        }
        return yield* rename(id, changes.name, { write: repo.rename, current: get(id), missing: notFound })
      })

      const getByEmail = Effect.fn("Users.getByEmail")(function* (email: string) {
        const found = yield* repo.findCredentials(email).pipe(Effect.catchTag("DbError", unavailable))
        if (found._tag === "None") return yield* new NotFound({ detail: "no user with this email" })
        return found.value.user
      })

      const verifyCredentials = Effect.fn("Users.verifyCredentials")(function* (email: string, password: string) {
        const found = yield* repo.findCredentials(email).pipe(Effect.catchTag("DbError", unavailable))
        const account = Option.getOrUndefined(found)
        // Always one argon2 verification: an unknown email costs what a wrong password costs.
        const ok = yield* passwords.verify(account?.passwordHash, password)
        return ok && account ? Option.some(account.user) : Option.none<User>()
      })

      const list = Effect.fn("Users.list")(function* (options: {
        readonly limit?: number | undefined
        readonly cursor?: string | undefined
        readonly email?: string | undefined
      }) {
        const limit = options.limit ?? DEFAULT_LIMIT
        const after = options.cursor === undefined ? undefined : yield* decodeTimeCursor(options.cursor)
        const rows = yield* repo
          .list({ limit: limit + 1, after, email: options.email })
          .pipe(Effect.catchTag("DbError", unavailable))
        return pageOf(rows, limit, (user) => ({ at: user.createdAt, id: user.id }))
      })

      const remove = Effect.fn("Users.remove")(function* (id: UserId) {
        yield* leaveActive(
          id,
          { status: "deleted" },
          {
            from: (status) => status !== "deleted",
            refused: new NotFound({ detail: `no user with id ${id}` }),
            event: outbox.publish({ type: "identity.user.deleted", subject: id, data: { userId: id } }),
          },
        )
      })

      const invalidToken = new InvalidToken({ detail: "the link is invalid, already used or expired" })

      const verifyEmail = Effect.fn("Users.verifyEmail")(function* (token: string) {
        const verified = yield* db
          .transaction(
            Effect.gen(function* () {
              const userId = yield* tokens.consume(token, "verify_email")
              if (userId._tag === "None") return Option.none<User>()
              const user = yield* repo.markEmailVerified(userId.value)
              if (user._tag === "Some") {
                yield* outbox.publish({
                  type: "identity.email.verified",
                  subject: user.value.id,
                  data: { userId: user.value.id, email: user.value.email },
                })
              }
              return user
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        if (verified._tag === "None") return yield* invalidToken
        return verified.value
      })

      const requestPasswordReset = Effect.fn("Users.requestPasswordReset")(function* (email: string) {
        const account = yield* repo.findCredentials(email).pipe(Effect.catchTag("DbError", unavailable))
        if (account._tag === "None") return
        yield* db
          .transaction(mailToken(account.value.user, "reset_password"))
          .pipe(Effect.catchTag("DbError", unavailable))
      })

      const confirmPasswordReset = Effect.fn("Users.confirmPasswordReset")(function* (
        token: string,
        newPassword: string,
      ) {
        // Hashing is the costly part: a made-up token must not get to queue for it.
        if (!(yield* tokens.isUsable(token, "reset_password").pipe(Effect.catchTag("DbError", unavailable)))) {
          return yield* invalidToken
        }
        const passwordHash = yield* passwords.hash(newPassword)
        const done = yield* db
          .transaction(
            Effect.gen(function* () {
              const userId = yield* tokens.consume(token, "reset_password")
              if (userId._tag === "None") return false
              if (!(yield* repo.setPasswordHash(userId.value, passwordHash))) return false
              yield* outbox.publish({
                type: "identity.password.reset",
                subject: userId.value,
                data: { userId: userId.value },
              })
              return true
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        if (!done) return yield* invalidToken
      })

      const inactive = new Forbidden({ detail: "this account is not active" })

      const me = Effect.fn("Users.me")(function* (id: UserId) {
        const user = yield* repo.findById(id).pipe(Effect.catchTag("DbError", unavailable))
        if (user._tag === "None" || user.value.status !== "active") return yield* inactive
        return user.value
      })

      const updateMe = Effect.fn("Users.updateMe")(function* (
        id: UserId,
        changes: { readonly name?: string | undefined },
      ) {
        return yield* rename(id, changes.name, { write: repo.renameActive, current: me(id), missing: inactive })
      })

      const changePassword = Effect.fn("Users.changePassword")(function* (input: {
        readonly id: UserId
        readonly currentPassword: string
        readonly newPassword: string
        readonly keepSessionId: string
      }) {
        const account = yield* repo.findActiveCredentials(input.id).pipe(Effect.catchTag("DbError", unavailable))
        if (account._tag === "None") return yield* inactive
        // A stolen access token must not become a password oracle: a few wrong guesses per hour, then 429.
        const now = yield* Clock.currentTimeMillis
        const hour = Math.floor(now / 3_600_000)
        const failuresKey = `${input.id}:${hour}`
        // The limit protects, it must not take password changes down: a count that fails lets the change through.
        const failures = yield* passwordChangeFailures
          .get(failuresKey)
          .pipe(Effect.orElseSucceed(() => Option.none<Window>()))
        if (Option.isSome(failures) && failures.value.consumed >= PASSWORD_CHANGE_FAILURES_PER_HOUR) {
          return yield* new TooManyRequests({
            detail: "too many wrong current passwords; retry later",
            retryAfter: Math.max(1, Math.ceil(((hour + 1) * 3_600_000 - now) / 1000)),
          })
        }
        if (!(yield* passwords.verify(account.value.passwordHash, input.currentPassword))) {
          yield* passwordChangeFailures.penalty(failuresKey).pipe(Effect.ignore)
          return yield* new InvalidCredentials({ detail: "the current password is wrong" })
        }
        const passwordHash = yield* passwords.hash(input.newPassword)
        const changed = yield* db
          .transaction(
            Effect.gen(function* () {
              if (!(yield* repo.setPasswordHash(input.id, passwordHash))) return false
              yield* outbox.publish({
                type: "identity.password.changed",
                subject: input.id,
                data: { userId: input.id, keepSessionId: input.keepSessionId },
              })
              return true
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        if (!changed) return yield* inactive
      })

      const deactivate = Effect.fn("Users.deactivate")(function* (id: UserId) {
        yield* leaveActive(
          id,
          { status: "disabled" },
          { from: (status) => status === "active", refused: inactive, event: updated(id, { status: "disabled" }) },
        )
      })

      const resendVerification = Effect.fn("Users.resendVerification")(function* (id: UserId) {
        const user = yield* me(id)
        if (user.emailVerified) return
        yield* db.transaction(mailToken(user, "verify_email")).pipe(Effect.catchTag("DbError", unavailable))
      })

      return Users.of({
        me,
        updateMe,
        changePassword,
        deactivate,
        resendVerification,
        create,
        get,
        update,
        getByEmail,
        verifyCredentials,
        list,
        remove,
        verifyEmail,
        requestPasswordReset,
        confirmPasswordReset,
      })
    }),
  )
}

const unavailable = Problem.unavailable("database unavailable", "the user store is unavailable, retry later")
