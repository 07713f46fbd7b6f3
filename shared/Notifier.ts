import { randomUUID } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { Db, type DbError } from "./Db.ts"

/** Kernel table of the Notifier (see KernelMigrations.ts). */
export { mailMigrations as migrations } from "./KernelMigrations.ts"

/** A mail to one recipient, in both a plain-text and an HTML rendering. */
export interface Mail {
  readonly to: string
  readonly subject: string
  readonly text: string
  readonly html: string
}

/** Sends email: the mail becomes a row of `mail_outbox` in the caller's transaction; MailSender delivers it. */
export class Notifier extends Context.Service<
  Notifier,
  {
    /**
     * Queues a mail; call it inside `Db.transaction` with the change it reports, so it is sent only if that commits.
     * Never waits for SMTP: delivery (and its retries) happen in the MailSender loop. Returns the mail's id.
     */
    send(mail: Mail): Effect.Effect<string, DbError>
  }
>()("shared/Notifier") {
  /** The Notifier of the service owning `Db`. */
  static readonly layer = Layer.effect(
    Notifier,
    Effect.gen(function* () {
      const db = yield* Db
      const send = Effect.fn("Notifier.send")(function* (mail: Mail) {
        const id = randomUUID()
        yield* db.query(
          `INSERT INTO ${db.schema}.mail_outbox (id, "to", subject, text, html) VALUES ($1, $2, $3, $4, $5)`,
          [id, mail.to, mail.subject, mail.text, mail.html],
        )
        return id
      })
      return Notifier.of({ send })
    }),
  )
}
