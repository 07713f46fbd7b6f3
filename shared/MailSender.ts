import { Cause, Context, Duration, Effect, Layer, Metric, Option, Redacted, Schema, Scope } from "effect"
import * as Backoff from "./Backoff.ts"
import { assertIdentifier, Db, type DbError } from "./Db.ts"
import { register } from "./Health.ts"
import type { Mail } from "./Notifier.ts"
import { pollLoop } from "./PollLoop.ts"

/** A failed delivery; message and cause are scrubbed of SMTP credentials. */
export class MailError extends Schema.TaggedError<MailError>()("MailError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** A queued mail handed to a transport; `id` is stable across retries (it becomes the Message-ID). */
/** Delivery attempts of a mail before it is given up (each failure waits longer; see `MailSenderOptions`). */
export const DEFAULT_MAX_ATTEMPTS = 10

export interface OutgoingMail extends Mail {
  readonly id: string
}

/** Where mails go: SMTP, or the dev mailbox (the row itself). */
export interface MailTransport {
  readonly name: "smtp" | "dev"
  deliver(mail: OutgoingMail): Effect.Effect<void, MailError>
}

/** SMTP settings; `url` is `smtp://user:pass@host:port` (or `smtps://`) and stays redacted. */
export interface SmtpOptions {
  readonly url: Redacted.Redacted<string>
  /** The From address; default `no-reply@localhost`. */
  readonly from?: string
}

/** Tuning of the delivery loop; the defaults suit a service sending a few mails a second. */
export interface MailSenderOptions {
  /** Rows claimed per round; default 20. */
  readonly batchSize?: number
  /** Wait between polls when nothing is due; default 500 ms. */
  readonly pollInterval?: Duration.Input
  /** First retry delay, doubled per failed attempt; default 1 s. */
  readonly baseBackoff?: Duration.Input
  /** Longest retry delay; default 1 minute. */
  readonly maxBackoff?: Duration.Input
  /** Attempts after which a mail is kept with its last error and no longer retried; default 10. */
  readonly maxAttempts?: number
  /** How long a claimed row stays invisible to other senders while it is being delivered; default 2 minutes. */
  readonly claimLease?: Duration.Input
}

interface ClaimedRow extends Record<string, unknown> {
  readonly id: string
  readonly to: string
  readonly subject: string
  readonly text: string
  readonly html: string
  readonly attempts: number
}

const delivered = Metric.counter("mail_sent_total", { description: "Mails delivered by transport", incremental: true })
const failedAttempts = Metric.counter("mail_failures_total", { description: "Failed mail delivery attempts" })

/** Delivers `mail_outbox` rows in the background: claims due rows, sends outside any transaction, retries with backoff. */
export class MailSender extends Context.Service<
  MailSender,
  {
    /**
     * Claims the due unsent mails, delivers them and records the outcome; returns how many were claimed.
     * Call it outside any transaction: no transaction may be held across the SMTP conversation.
     */
    sendDue(): Effect.Effect<number, DbError>
  }
>()("shared/MailSender") {
  /** The sender over a given transport, with its loop running until the layer's scope closes. */
  static readonly layerTransport = (transport: MailTransport, options: MailSenderOptions = {}) =>
    Layer.effect(MailSender, make(transport, options))

  /** SMTP through nodemailer, with the "smtp" readiness check (`verify()`); needs `Health`. */
  static readonly layerSmtp = (smtp: SmtpOptions, options: MailSenderOptions = {}) =>
    Layer.effect(
      MailSender,
      Effect.flatMap(smtpTransport(smtp), (transport) => make(transport, options)),
    )

  /** The dev mailbox (embedded default): "delivers" by marking the row sent; `DevMailbox.list` shows it. */
  static readonly layerDev = (options: MailSenderOptions = {}) => Layer.effect(MailSender, make(devTransport, options))

  /** SMTP when `SMTP_URL` (from the function's validated config) is set and not empty, otherwise the dev mailbox. */
  static readonly fromConfig = (
    config: { readonly smtpUrl: Option.Option<Redacted.Redacted<string>>; readonly mailFrom: Option.Option<string> },
    options: MailSenderOptions = {},
  ) =>
    Option.isSome(config.smtpUrl) && Redacted.value(config.smtpUrl.value) !== ""
      ? MailSender.layerSmtp({ url: config.smtpUrl.value, from: Option.getOrUndefined(config.mailFrom) }, options)
      : MailSender.layerDev(options)
}

const make = (transport: MailTransport, options: MailSenderOptions) =>
  Effect.gen(function* () {
    const db = yield* Db
    const schema = assertIdentifier(db.schema)
    const batchSize = options.batchSize ?? 20
    const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? "500 millis")
    const backoff = { base: options.baseBackoff ?? "1 second", max: options.maxBackoff ?? "1 minute" }
    const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS
    const leaseMs = Duration.toMillis(options.claimLease ?? "2 minutes")
    // A mail's retries are timed by its row (next_attempt_at), not by a running schedule: a sender restarting, or
    // another instance, takes them up where they were.
    const backoffMs = (attempts: number) => Duration.toMillis(Backoff.delayAt(backoff, attempts))

    // One short autocommit statement claims the rows: bumping next_attempt_at hides them from other senders for the
    // lease; a sender dying mid-delivery leaves them to be retried when it expires (at-least-once).
    const claim = db.query<ClaimedRow>(
      `UPDATE ${schema}.mail_outbox SET attempts = attempts + 1,
              next_attempt_at = now() + make_interval(secs => $2::double precision / 1000)
       WHERE id IN (SELECT id FROM ${schema}.mail_outbox
                    WHERE sent_at IS NULL AND attempts < $3 AND next_attempt_at <= now()
                    ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       RETURNING id, "to", subject, text, html, attempts`,
      [batchSize, leaseMs, maxAttempts],
    )

    const send = Effect.fn("MailSender.send", { kind: "client", attributes: { "mail.transport": transport.name } })(
      function* (row: ClaimedRow) {
        yield* Effect.annotateCurrentSpan({ "mail.id": row.id, "mail.attempt": row.attempts })
        const exit = yield* Effect.exit(
          transport.deliver(row).pipe(
            Effect.timeoutOrElse({
              duration: Duration.millis(Math.max(1, leaseMs / 2)),
              orElse: () => Effect.fail(new MailError({ message: "mail delivery timed out", cause: null })),
            }),
          ),
        )
        if (exit._tag === "Success") {
          yield* db.query(`UPDATE ${schema}.mail_outbox SET sent_at = now(), last_error = NULL WHERE id = $1`, [row.id])
          yield* Metric.update(Metric.withAttributes(delivered, { transport: transport.name }), 1)
          return
        }
        const error = Cause.squash(exit.cause)
        const message = error instanceof MailError ? error.message : "unexpected failure delivering mail"
        yield* Metric.update(failedAttempts, 1)
        yield* db.query(
          `UPDATE ${schema}.mail_outbox SET last_error = $2,
                  next_attempt_at = now() + make_interval(secs => $3::double precision / 1000)
           WHERE id = $1`,
          [row.id, message.slice(0, 2000), backoffMs(row.attempts)],
        )
        const annotations = { mailId: row.id, attempts: row.attempts, error: message }
        if (row.attempts >= maxAttempts)
          yield* Effect.logError("mail delivery abandoned after max attempts", annotations)
        else
          yield* Effect.logWarning("mail delivery failed, will retry", {
            ...annotations,
            retryInMs: backoffMs(row.attempts),
          })
      },
    )

    const sendDue = Effect.fn("MailSender.sendDue")(function* () {
      const rows = yield* claim
      yield* Effect.forEach(rows, send, { concurrency: 5, discard: true })
      return rows.length
    })

    // Untraced and cheap (partial index): an idle sender polls twice a second without opening spans.
    const due = db
      .query<{ due: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM ${schema}.mail_outbox
                        WHERE sent_at IS NULL AND attempts < $1 AND next_attempt_at <= now()) AS due`,
        [maxAttempts],
      )
      .pipe(
        Effect.map(([row]) => row?.due === true),
        Effect.withTracerEnabled(false),
      )

    const loop = pollLoop(
      Effect.flatMap(due, (some) => (some ? sendDue() : Effect.succeed(0))),
      { what: "mail sender", batchSize, pollInterval, maxBackoff: backoff.max },
    ).pipe(Effect.annotateLogs({ component: "MailSender", schema, transport: transport.name }))

    yield* Effect.forkScoped(loop)
    return MailSender.of({ sendDue })
  })

/** The dev mailbox: nothing leaves the process; the row marked sent is the delivered mail. */
const devTransport: MailTransport = {
  name: "dev",
  deliver: (mail) => Effect.logInfo("mail delivered to the dev mailbox", { mailId: mail.id, subject: mail.subject }),
}

const smtpTransport = (options: SmtpOptions) =>
  Effect.gen(function* () {
    const settings = yield* parseSmtpUrl(options.url)
    const scrub = scrubber(settings.secrets)
    // nodemailer (240 KB) is imported, and the transport made, on the first check or mail rather than at start: a
    // function answers its first request without evaluating it (cold start, ≈ 10 ms), and the dev mailbox never does.
    const scope = yield* Effect.scope
    const transporter = yield* Effect.cached(
      Effect.promise(() => import("nodemailer")).pipe(
        Effect.flatMap(({ default: nodemailer }) =>
          Effect.acquireRelease(
            Effect.sync(() =>
              nodemailer.createTransport({
                host: settings.host,
                port: settings.port,
                secure: settings.secure,
                ...(settings.auth ? { auth: settings.auth } : {}),
                connectionTimeout: 10_000,
                greetingTimeout: 10_000,
                socketTimeout: 30_000,
                logger: false,
                debug: false,
              }),
            ),
            (transporter) => Effect.sync(() => transporter.close()),
          ),
        ),
        Scope.provide(scope),
      ),
    )
    yield* register(
      "smtp",
      Effect.flatMap(transporter, (smtp) =>
        Effect.tryPromise({ try: () => smtp.verify(), catch: (cause) => toMailError("verify", cause, scrub) }),
      ),
    )
    const from = options.from ?? "no-reply@localhost"
    return {
      name: "smtp",
      deliver: (mail) =>
        Effect.flatMap(transporter, (smtp) =>
          Effect.tryPromise({
            try: () =>
              smtp.sendMail({
                from,
                to: mail.to,
                subject: mail.subject,
                text: mail.text,
                html: mail.html,
                messageId: `<${mail.id}@${settings.host}>`,
              }),
            catch: (cause) => toMailError(`send to ${settings.host}:${settings.port}`, cause, scrub),
          }),
        ).pipe(Effect.asVoid),
    } satisfies MailTransport
  })

interface SmtpSettings {
  readonly host: string
  readonly port: number
  readonly secure: boolean
  readonly auth: { readonly user: string; readonly pass: string } | undefined
  readonly secrets: ReadonlyArray<string>
}

// Parses SMTP_URL without ever echoing it: a bad URL is reported by shape only.
const parseSmtpUrl = (url: Redacted.Redacted<string>) =>
  Effect.try({
    try: (): SmtpSettings => {
      const parsed = new URL(Redacted.value(url))
      if (parsed.protocol !== "smtp:" && parsed.protocol !== "smtps:") throw new Error("scheme")
      const secure = parsed.protocol === "smtps:"
      const user = decodeURIComponent(parsed.username)
      const pass = decodeURIComponent(parsed.password)
      const secrets = pass
        ? [
            pass,
            parsed.password,
            Buffer.from(pass).toString("base64"),
            Buffer.from(`\u0000${user}\u0000${pass}`).toString("base64"),
            Redacted.value(url),
          ]
        : []
      return {
        host: parsed.hostname,
        port: parsed.port ? Number(parsed.port) : secure ? 465 : 587,
        secure,
        auth: user || pass ? { user, pass } : undefined,
        secrets,
      }
    },
    catch: () =>
      new MailError({ message: "SMTP_URL is not a valid smtp:// or smtps:// URL (value not shown)", cause: null }),
  })

const scrubber = (secrets: ReadonlyArray<string>) => (text: string) =>
  secrets.reduce((acc, secret) => (secret ? acc.split(secret).join("***") : acc), text)

// nodemailer errors carry the server's response and the command; only scrubbed copies of those leave this module.
const toMailError = (what: string, cause: unknown, scrub: (text: string) => string) => {
  const error = cause as { message?: unknown; code?: unknown; responseCode?: unknown; command?: unknown }
  const detail = scrub(String(error?.message ?? cause))
  return new MailError({
    message: `SMTP ${what} failed: ${detail}`,
    cause: {
      code: typeof error?.code === "string" ? error.code : undefined,
      responseCode: typeof error?.responseCode === "number" ? error.responseCode : undefined,
      command: typeof error?.command === "string" ? scrub(error.command) : undefined,
      message: detail,
    },
  })
}
