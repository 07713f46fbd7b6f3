import { Context, Effect, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Db, type DbError } from "./Db.ts"

/** A mail the dev mailbox "delivered", as `GET /_dev/mail` shows it (and the gateway reads it to merge them). */
export const DevMail = Schema.Struct({
  to: Schema.String,
  subject: Schema.String,
  text: Schema.String,
  html: Schema.String,
  sentAt: Schema.String,
})
export type DevMail = typeof DevMail.Type

/** The embedded default's mailbox: the sent rows of `mail_outbox`, so local users can follow verification links. */
export class DevMailbox extends Context.Service<
  DevMailbox,
  {
    /** The sent mails, most recently queued first (at most `limit`, default 50). */
    list(limit?: number): Effect.Effect<{ readonly items: ReadonlyArray<DevMail> }, DbError>
  }
>()("shared/DevMailbox") {
  /** The mailbox of the service owning `Db`. */
  static readonly layer = Layer.effect(
    DevMailbox,
    Effect.gen(function* () {
      const db = yield* Db
      const list = Effect.fn("DevMailbox.list")(function* (limit = 50) {
        const rows = yield* db.query<{ to: string; subject: string; text: string; html: string; sent_at: Date }>(
          `SELECT "to", subject, text, html, sent_at FROM ${db.schema}.mail_outbox
           WHERE sent_at IS NOT NULL ORDER BY created_at DESC LIMIT $1`,
          [Math.max(1, Math.min(Math.trunc(limit), 500))],
        )
        return {
          items: rows.map((row) => ({
            to: row.to,
            subject: row.subject,
            text: row.text,
            html: row.html,
            sentAt: row.sent_at.toISOString(),
          })),
        }
      })
      return DevMailbox.of({ list })
    }),
  )
}

/** Where a function serves its dev mailbox, and the gateway every function's, merged. */
export const DEV_MAIL_PATH = "/_dev/mail"

/** `GET /_dev/mail`: the dev mailbox as JSON (development only: mount it only when mail goes to the dev mailbox). */
export const route = Layer.unwrap(
  Effect.map(Effect.service(DevMailbox), (mailbox) =>
    HttpRouter.add(
      "GET",
      DEV_MAIL_PATH,
      mailbox.list().pipe(
        Effect.map((page) => HttpServerResponse.jsonUnsafe(page)),
        Effect.orDie,
      ),
    ),
  ),
).pipe(Layer.provide(DevMailbox.layer))

/**
 * The dev mailbox's route for a function that mails: mounted only when mail goes to the dev mailbox (no `SMTP_URL`)
 * and never in production (the gateway's `GET /_dev/mail` merges every function's).
 */
export const routeFor = (config: { readonly smtpUrl: Option.Option<unknown>; readonly env: string }) =>
  Option.isNone(config.smtpUrl) && config.env !== "production" ? route : Layer.empty
