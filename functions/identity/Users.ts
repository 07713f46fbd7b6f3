import { Context, Effect, Layer } from "effect"
import { Db, UNIQUE_VIOLATION } from "../../shared/Db.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { EmailTaken, NotFound, ServiceUnavailable } from "../../shared/Problem.ts"
import type { User, UserChanges, UserId } from "./User.ts"
import { UsersRepo } from "./UsersRepo.ts"

/** The identity domain service: creates and reads users, publishing events through the outbox. */
export class Users extends Context.Service<
  Users,
  {
    create(input: {
      readonly email: string
      readonly name: string
    }): Effect.Effect<User, EmailTaken | ServiceUnavailable>
    get(id: UserId): Effect.Effect<User, NotFound | ServiceUnavailable>
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

      const create = Effect.fn("Users.create")(function* (input: { readonly email: string; readonly name: string }) {
        return yield* db
          .transaction(
            Effect.gen(function* () {
              const user = yield* repo.insert(input)
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

      return Users.of({ create, get, update })
    }),
  )
}

// Infrastructure failures are logged with their cause and surface as a retryable 503 without internals.
const unavailable = (error: { readonly message: string }): Effect.Effect<never, ServiceUnavailable> =>
  Effect.andThen(
    Effect.logError("database unavailable", error.message),
    Effect.fail(new ServiceUnavailable({ detail: "the user store is unavailable, retry later" })),
  )
