import { Writable } from "node:stream"
import { Context, Effect, Layer, Logger, Redacted } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import { Db } from "./Db.ts"
import { DevMailbox } from "./DevMailbox.ts"
import { Health } from "./Health.ts"
import * as Logging from "./Logging.ts"
import { MailSender, type MailSenderOptions } from "./MailSender.ts"
import { migrate } from "./Migrator.ts"
import { type Mail, migrations, Notifier } from "./Notifier.ts"
import { serviceDb, waitUntil } from "./testing/busHarness.ts"
import { type SmtpCapture, startSmtpCapture } from "./testing/smtpCapture.ts"

// Fast retries so the outage test stays short.
const fast: MailSenderOptions = { pollInterval: "30 millis", baseBackoff: "100 millis", maxBackoff: "300 millis" }

const captures: Array<SmtpCapture> = []
const capture = async (options: Parameters<typeof startSmtpCapture>[0] = {}) => {
  const server = await startSmtpCapture(options)
  captures.push(server)
  return server
}
afterEach(async () => {
  await Promise.all(captures.splice(0).map((c) => c.close()))
})

// Log lines as the production pino logger writes them.
const logCapture = () => {
  const lines: Array<string> = []
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split("\n").filter(Boolean))
      done()
    },
  })
  const logger = Logging.fromPino(Logging.makePino({ service: "test", level: "debug", destination }))
  return { lines, layer: Logger.layer([logger]) }
}

// A fresh schema with the mail table, and the Notifier, DevMailbox, Health and the given sender over it.
const setup = <E>(sender: Layer.Layer<MailSender, E, Db | Health>) =>
  Effect.gen(function* () {
    const db = yield* serviceDb("t_mail")
    yield* migrate(migrations).pipe(Effect.provideService(Db, db))
    const context = yield* Layer.build(
      Layer.mergeAll(Notifier.layer, DevMailbox.layer, sender.pipe(Layer.provideMerge(Health.layer))).pipe(
        Layer.provide(Layer.succeed(Db, db)),
      ),
    )
    return {
      db,
      notifier: Context.get(context, Notifier),
      mailbox: Context.get(context, DevMailbox),
      health: Context.get(context, Health),
    }
  })

const smtpUrl = (port: number, auth?: { user: string; pass: string }) =>
  Redacted.make(
    auth
      ? `smtp://${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.pass)}@127.0.0.1:${port}`
      : `smtp://127.0.0.1:${port}`,
  )

const mail = (n: number | string): Mail => ({
  to: `user${n}@example.com`,
  subject: `Subject ${n}`,
  text: `Text ${n}`,
  html: `<p>Html ${n}</p>`,
})

const rowsOf = (db: Db["Service"]) =>
  db.query<{ subject: string; attempts: number; sent_at: Date | null; last_error: string | null }>(
    `SELECT subject, attempts, sent_at, last_error FROM ${db.schema}.mail_outbox ORDER BY created_at`,
  )

const run = <A, E>(effect: Effect.Effect<A, E, import("effect").Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(effect))

describe("Notifier + MailSender", () => {
  it("never sends a mail written in a transaction that rolled back", async () => {
    const smtp = await capture()
    await run(
      Effect.gen(function* () {
        const { db, notifier } = yield* setup(MailSender.layerSmtp({ url: smtpUrl(smtp.port) }, fast))
        const rolledBack = yield* Effect.exit(
          db.transaction(Effect.andThen(notifier.send(mail("lost")), Effect.fail("boom" as const))),
        )
        expect(rolledBack._tag).toBe("Failure")
        yield* db.transaction(notifier.send(mail("kept")))
        yield* waitUntil("the committed mail", () => smtp.mails.length >= 1, "10 seconds")
        yield* Effect.sleep("200 millis")
        expect(smtp.mails.map((m) => m.subject)).toEqual(["Subject kept"])
        expect((yield* rowsOf(db)).map((r) => r.subject)).toEqual(["Subject kept"])
      }),
    )
  })

  it("delivers a committed mail to the SMTP server with subject, text and html intact", async () => {
    const smtp = await capture()
    const sent: Mail = {
      to: "ada@example.com",
      subject: "Bienvenue — café ✓ <ok>",
      text: `Hello Ada,\n\nA long line that nodemailer has to wrap: ${"0123456789".repeat(12)}\nÜmlaut = fine\n`,
      html: `<p>Hello <b>Ada</b> — <a href="https://app.example.com/verify-email?token=a%2Bb&amp;x=1">go</a></p>`,
    }
    await run(
      Effect.gen(function* () {
        const { db, notifier, health } = yield* setup(
          MailSender.layerSmtp({ url: smtpUrl(smtp.port), from: "platform@example.com" }, fast),
        )
        const id = yield* db.transaction(notifier.send(sent))
        yield* waitUntil("delivery", () => smtp.mails.length >= 1, "10 seconds")
        const [received] = smtp.mails
        expect(received?.to).toEqual(["ada@example.com"])
        expect(received?.from).toBe("platform@example.com")
        expect(received?.subject).toBe(sent.subject)
        expect(received?.text.replace(/\r\n/g, "\n")).toBe(sent.text)
        expect(received?.html.replace(/\r\n/g, "\n")).toBe(sent.html)
        expect(received?.messageId).toContain(id)
        yield* waitUntil(
          "sent_at",
          Effect.map(rowsOf(db), ([row]) => row?.sent_at != null),
          "5 seconds",
        )
        const [row] = yield* rowsOf(db)
        expect(row).toMatchObject({ attempts: 1, last_error: null })
        expect((yield* health.readiness).checks.smtp).toBe("ok")
      }),
    )
  })

  it("retries while the SMTP server refuses connections and delivers once when it is back", async () => {
    const probe = await startSmtpCapture()
    const port = probe.port
    await probe.close()
    await run(
      Effect.gen(function* () {
        const { db, notifier, health } = yield* setup(MailSender.layerSmtp({ url: smtpUrl(port) }, fast))
        yield* db.transaction(notifier.send(mail("retry")))
        yield* waitUntil(
          "two failed attempts",
          Effect.map(rowsOf(db), ([row]) => (row?.attempts ?? 0) >= 2 && row?.last_error != null),
          "10 seconds",
        )
        expect((yield* health.readiness).checks.smtp).toBe("failing")
        const smtp = yield* Effect.promise(() => capture({ port }))
        yield* waitUntil(
          "delivery after the outage",
          Effect.map(rowsOf(db), ([row]) => row?.sent_at != null),
          "10 seconds",
        )
        yield* Effect.sleep("500 millis")
        expect(smtp.mails.map((m) => m.subject)).toEqual(["Subject retry"])
        const [row] = yield* rowsOf(db)
        expect(row?.last_error).toBeNull()
        expect(row?.attempts).toBeGreaterThanOrEqual(3)
      }),
    )
  })

  it("never shows the SMTP password in logs, stored errors or readiness, and gives up after maxAttempts", async () => {
    const password = "s3cr3t/P@ss word"
    const smtp = await capture({ auth: { user: "mailer", pass: password }, echoRefusedPassword: true })
    const logs = logCapture()
    const forms = [
      password,
      encodeURIComponent(password),
      Buffer.from(password).toString("base64"),
      Buffer.from(`\u0000mailer\u0000${password}`).toString("base64"),
    ]
    await run(
      Effect.gen(function* () {
        const { db, notifier, health } = yield* setup(
          MailSender.layerSmtp({ url: smtpUrl(smtp.port, { user: "mailer", pass: password }) }, fast),
        )
        yield* db.transaction(notifier.send(mail("secret")))
        yield* waitUntil("delivery", () => smtp.mails.length >= 1, "10 seconds")
        expect(smtp.logins).toContain("mailer")
        expect((yield* health.readiness).checks.smtp).toBe("ok")
      }).pipe(Effect.provide(logs.layer)),
    )
    const wrong = `${password}-wrong`
    forms.push(wrong, encodeURIComponent(wrong), Buffer.from(`\u0000mailer\u0000${wrong}`).toString("base64"))
    let stored: Array<string | null> = []
    let readiness = ""
    await run(
      Effect.gen(function* () {
        // The server expects another password: every attempt fails, and its rejection even echoes the one it got.
        const { db, notifier, health } = yield* setup(
          MailSender.layerSmtp(
            { url: smtpUrl(smtp.port, { user: "mailer", pass: wrong }) },
            { ...fast, maxAttempts: 2 },
          ),
        )
        yield* db.transaction(notifier.send(mail("refused")))
        yield* waitUntil(
          "abandonment",
          () => logs.lines.some((l) => l.includes("mail delivery abandoned")),
          "10 seconds",
        )
        yield* Effect.sleep("300 millis")
        const rows = yield* rowsOf(db)
        expect(rows[0]).toMatchObject({ attempts: 2, sent_at: null })
        stored = rows.map((r) => r.last_error)
        readiness = JSON.stringify(yield* health.readiness)
      }).pipe(Effect.provide(logs.layer)),
    )
    expect(stored[0]).toMatch(/SMTP send .* failed: Invalid login: 535 Invalid username or password \(\*\*\*\)/)
    expect(readiness).toContain('"smtp":"failing"')
    const everything = [...logs.lines, ...stored, readiness].join("\n")
    expect(everything).toContain("mail delivery failed, will retry")
    for (const form of forms) expect(everything).not.toContain(form)
    expect(smtp.mails.map((m) => m.subject)).toEqual(["Subject secret"])
  })

  it("the dev mailbox marks mails sent and lists them newest first", async () => {
    await run(
      Effect.gen(function* () {
        const { db, notifier, mailbox } = yield* setup(MailSender.layerDev(fast))
        for (const n of [1, 2, 3]) yield* db.transaction(notifier.send(mail(n)))
        yield* waitUntil(
          "three sent mails",
          Effect.map(mailbox.list(), (list) => list.items.length === 3),
          "10 seconds",
        )
        const { items } = yield* mailbox.list()
        expect(items.map((m) => m.subject)).toEqual(["Subject 3", "Subject 2", "Subject 1"])
        expect(items[0]).toMatchObject({ to: "user3@example.com", text: "Text 3", html: "<p>Html 3</p>" })
        expect(Number.isNaN(Date.parse(items[0]?.sentAt ?? ""))).toBe(false)
        expect((yield* mailbox.list(2)).items).toHaveLength(2)
      }),
    )
  })
})
