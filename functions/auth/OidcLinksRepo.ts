import { Context, Effect, Layer, Option } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"

/** SQL access to the links between users and their accounts at external OpenID Providers. */
export class OidcLinksRepo extends Context.Service<
  OidcLinksRepo,
  {
    /** The user linked to this provider account, touching its last sign-in. */
    findUser(provider: string, subject: string): Effect.Effect<Option.Option<string>, DbError>
    /** Links a provider account to a user (the first link wins when two sign-ins race). */
    link(input: {
      readonly provider: string
      readonly subject: string
      readonly userId: string
      readonly email: string
    }): Effect.Effect<string, DbError>
  }
>()("auth/OidcLinksRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    OidcLinksRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const table = `${db.schema}.oidc_identities`

      const findUser = Effect.fn("OidcLinksRepo.findUser")(function* (provider: string, subject: string) {
        const rows = yield* db.query<{ user_id: string }>(
          `UPDATE ${table} SET last_login_at = now() WHERE provider = $1 AND subject = $2 RETURNING user_id`,
          [provider, subject],
        )
        return Option.fromUndefinedOr(rows[0]?.user_id)
      })

      const link = Effect.fn("OidcLinksRepo.link")(function* (input: {
        readonly provider: string
        readonly subject: string
        readonly userId: string
        readonly email: string
      }) {
        const rows = yield* db.query<{ user_id: string }>(
          `INSERT INTO ${table} (provider, subject, user_id, email) VALUES ($1, $2, $3, $4)
           ON CONFLICT (provider, subject) DO UPDATE SET last_login_at = now()
           RETURNING user_id`,
          [input.provider, input.subject, input.userId, input.email],
        )
        return rows[0]?.user_id ?? input.userId
      })

      return OidcLinksRepo.of({ findUser, link })
    }),
  )
}
