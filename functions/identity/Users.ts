import { Context, Effect, Layer, Option } from "effect"
import { Db, UNIQUE_VIOLATION } from "../../shared/Db.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { DEFAULT_LIMIT, decodeCursor, pageOf } from "../../shared/Pagination.ts"
import { EmailTaken, NotFound, ServiceUnavailable, type ValidationFailed } from "../../shared/Problem.ts"
import { Passwords } from "./Passwords.ts"
import type { User, UserChanges, UserId } from "./User.ts"
import { UsersRepo } from "./UsersRepo.ts"

/** The identity domain service: creates and reads users, publishing events through the outbox. */
export class Users extends Context.Service<
  Users,
  {
    /** Creates a user; a password, when given, is hashed before the transaction opens. */
    create(input: {
      readonly email: string
      readonly name: string
      readonly password?: string | undefined
    }): Effect.Effect<User, EmailTaken | ServiceUnavailable>
    get(id: UserId): Effect.Effect<User, NotFound | ServiceUnavailable>
    getByEmail(email: string): Effect.Effect<User, NotFound | ServiceUnavailable>
    /** A page of users, newest first (`{items, nextCursor}`). */
    list(options: {
      readonly limit?: number | undefined
      readonly cursor?: string | undefined
      readonly email?: string | undefined
    }): Effect.Effect<{ items: Array<User>; nextCursor: string | null }, ValidationFailed | ServiceUnavailable>
    /** Deactivates the account for good (status `deleted`) and publishes identity.user.deleted. */
    remove(id: UserId): Effect.Effect<void, NotFound | ServiceUnavailable>
    /** The account when `password` is right; `None` for an unknown email or a wrong password alike. */
    verifyCredentials(email: string, password: string): Effect.Effect<Option.Option<User>, ServiceUnavailable>
    update(id: UserId, changes: UserChanges): Effect.Effect<User, NotFound | ServiceUnavailable>
  }
>()("identity/Users") {
  /** Users over the repository, the Db (transactions) and the outbox. */
  static readonly layer = Layer.effect(
    Users,
    Effect.gen(function* () {
      const db = yield* Db
      const repo = yield* UsersRepo
      const outbox = yield* Outbox
      const passwords = yield* Passwords

      const create = Effect.fn("Users.create")(function* (input: {
        readonly email: string
        readonly name: string
        readonly password?: string | undefined
      }) {
        const passwordHash = input.password === undefined ? undefined : yield* passwords.hash(input.password)
        return yield* db
          .transaction(
            Effect.gen(function* () {
              const user = yield* repo.insert({ email: input.email, name: input.name, passwordHash })
              yield* outbox.publish({
                type: "identity.user.created",
                subject: user.id,
                data: { userId: user.id, email: user.email, name: user.name },
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

      const update = Effect.fn("Users.update")(function* (id: UserId, changes: UserChanges) {
        // Nothing to change: answer with the user as it is, without a write or an event.
        if (changes.name === undefined && changes.status === undefined) return yield* get(id)
        const updated = yield* db
          .transaction(
            Effect.gen(function* () {
              const user = yield* repo.update(id, changes)
              if (user._tag === "Some") {
                yield* outbox.publish({
                  type: "identity.user.updated",
                  subject: id,
                  data: { userId: id, changes },
                })
              }
              return user
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        if (updated._tag === "None") return yield* new NotFound({ detail: `no user with id ${id}` })
        return updated.value
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
        const after = options.cursor === undefined ? undefined : yield* decodeCursor(options.cursor)
        const rows = yield* repo
          .list({ limit: limit + 1, after, email: options.email })
          .pipe(Effect.catchTag("DbError", unavailable))
        return pageOf(rows, limit, (user) => ({ at: user.createdAt, id: user.id }))
      })

      const remove = Effect.fn("Users.remove")(function* (id: UserId) {
        const removed = yield* db
          .transaction(
            Effect.gen(function* () {
              const done = yield* repo.markDeleted(id)
              if (done) yield* outbox.publish({ type: "identity.user.deleted", subject: id, data: { userId: id } })
              return done
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        if (!removed) return yield* new NotFound({ detail: `no user with id ${id}` })
      })

      return Users.of({ create, get, update, getByEmail, verifyCredentials, list, remove })
    }),
  )
}

// Infrastructure failures are logged with their cause and surface as a retryable 503 without internals.
const unavailable = (error: { readonly message: string }): Effect.Effect<never, ServiceUnavailable> =>
  Effect.andThen(
    Effect.logError("database unavailable", error.message),
    Effect.fail(new ServiceUnavailable({ detail: "the user store is unavailable, retry later" })),
  )
