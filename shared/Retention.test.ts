// Retention of the kernel's tables on the real Postgres and on the embedded PGlite server of `npm start`: each rule
// deletes exactly the rows past their purpose, in batches, and passes over a row another transaction holds.
import { randomUUID } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Option, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startEmbeddedPostgres } from "../infra/embedded/postgres.ts"
import { Db } from "./Db.ts"
import { kernelMigrations } from "./KernelMigrations.ts"
import { DEFAULT_MAX_ATTEMPTS as MAIL_MAX_ATTEMPTS } from "./MailSender.ts"
import { migrate } from "./Migrator.ts"
import * as Retention from "./Retention.ts"
import { freshSchema } from "./testing/harness.ts"
import { freePort } from "./testing/ports.ts"

const DAY = 86_400_000
const ago = (days: number) => new Date(Date.now() - days * DAY)

// Rows of every kind, each named by what it is: old ones past the 7-day default, young ones within it.
const seed = (db: Db["Service"]) =>
  Effect.gen(function* () {
    const s = db.schema
    const outbox = (name: string, createdDaysAgo: number, published: boolean) =>
      db.query(
        `INSERT INTO ${s}.outbox (id, topic, key, event, created_at, published_at) VALUES ($1, 't.events', $2, '{}', $3, $4)`,
        [randomUUID(), name, ago(createdDaysAgo), published ? ago(createdDaysAgo - 0.001) : null],
      )
    yield* outbox("old-published", 8, true)
    yield* outbox("old-unpublished", 8, false)
    yield* outbox("young-published", 1, true)
    yield* outbox("young-unpublished", 1, false)
    // 25 old inbox rows: more than three batches of 7.
    for (let i = 0; i < 25; i++) {
      yield* db.query(`INSERT INTO ${s}.inbox (consumer, event_id, processed_at) VALUES ('c', $1, $2)`, [
        `old-${i}`,
        ago(8 + i / 100),
      ])
    }
    yield* db.query(`INSERT INTO ${s}.inbox (consumer, event_id, processed_at) VALUES ('c', 'young', $1)`, [ago(6)])
    const mail = (subject: string, createdDaysAgo: number, sent: boolean, attempts = 1) =>
      db.query(
        `INSERT INTO ${s}.mail_outbox (id, "to", subject, text, html, created_at, sent_at, attempts)
         VALUES ($1, 'someone@example.com', $2, '', '', $3, $4, $5)`,
        [randomUUID(), subject, ago(createdDaysAgo), sent ? ago(createdDaysAgo) : null, attempts],
      )
    yield* mail("old-sent", 8, true)
    yield* mail("old-given-up", 8, false, MAIL_MAX_ATTEMPTS)
    // Still being tried (its sender was down): kept, however old.
    yield* mail("old-pending", 8, false, 3)
    yield* mail("young-sent", 2, true)
    yield* mail("young-pending", 0, false)
  })

const remaining = (db: Db["Service"]) =>
  Effect.gen(function* () {
    const s = db.schema
    const column = <A>(rows: ReadonlyArray<Record<string, unknown>>) => rows.map((r) => Object.values(r)[0] as A).sort()
    return {
      outbox: column(yield* db.query(`SELECT key FROM ${s}.outbox`)),
      inbox: column(yield* db.query(`SELECT event_id FROM ${s}.inbox`)),
      mail: column(yield* db.query(`SELECT subject FROM ${s}.mail_outbox`)),
    }
  })

const kernelConfig = (kafka: boolean) => ({
  eventRetentionDays: 7,
  inboxRetentionDays: 7,
  mailRetentionDays: 7,
  kafkaBrokers: kafka ? Option.some(["kafka:9092"]) : Option.none(),
})

// A fresh schema with the kernel's tables and rows, on the Postgres at `url`.
const withSeededDb = <A, E>(url: string, f: (db: Db["Service"]) => Effect.Effect<A, E, Db>) =>
  Effect.gen(function* () {
    const db = yield* Db
    yield* migrate(kernelMigrations)
    yield* seed(db)
    return yield* f(db)
  }).pipe(Effect.provide(Db.layer({ ...freshSchema("t_retention"), url: Redacted.make(url) })), Effect.scoped)

const prune = (kafka: boolean, batchSize: number) =>
  Retention.run.pipe(Effect.provide(Retention.layer(Retention.kernelRules(kernelConfig(kafka)), batchSize)))

const kernelCases = (url: () => string) => {
  it("with Kafka: deletes published outbox rows, handled inbox rows and mail past their days, in batches", async () => {
    const { counts, left } = await Effect.runPromise(
      withSeededDb(url(), (db) =>
        Effect.gen(function* () {
          const counts = yield* prune(true, 7)
          return { counts, left: yield* remaining(db) }
        }),
      ),
    )
    expect(counts).toEqual({ outbox: 1, inbox: 25, mail_outbox: 2, idempotency_keys: 0 })
    expect(left).toEqual({
      // An unpublished row is the relay's still: never deleted while Kafka carries the events.
      outbox: ["old-unpublished", "young-published", "young-unpublished"],
      inbox: ["young"],
      mail: ["old-pending", "young-pending", "young-sent"],
    })
  })

  it("on the embedded bus (the outbox is the log): deletes outbox rows written before the cutoff", async () => {
    const left = await Effect.runPromise(
      withSeededDb(url(), (db) => Effect.andThen(prune(false, 1_000), remaining(db))),
    )
    expect(left.outbox).toEqual(["young-published", "young-unpublished"])
    expect(left.inbox).toEqual(["young"])
  })
}

describe("Retention of the kernel's tables (real Postgres)", () => {
  kernelCases(() => process.env.DATABASE_URL!)

  it("passes over a row another transaction holds instead of waiting for it, and deletes it on the next run", async () => {
    const result = await Effect.runPromise(
      withSeededDb(
        process.env.DATABASE_URL!,
        (db) =>
          Effect.gen(function* () {
            // Another session locks one old inbox row and keeps its transaction open while retention runs.
            const holder = yield* Effect.acquireRelease(
              Effect.promise(() => db.pool.connect()),
              (c) => Effect.sync(() => c.release()),
            )
            yield* Effect.promise(() => holder.query("BEGIN"))
            yield* Effect.promise(() =>
              holder.query(`SELECT 1 FROM ${db.schema}.inbox WHERE event_id = 'old-3' FOR UPDATE`),
            )
            const first = yield* prune(true, 7).pipe(Effect.timeout("20 seconds"))
            const whileHeld = (yield* remaining(db)).inbox
            yield* Effect.promise(() => holder.query("COMMIT"))
            const second = yield* prune(true, 7)
            return { first, whileHeld, second, after: (yield* remaining(db)).inbox }
          }).pipe(Effect.scoped), // the held connection goes back before the pool closes
      ),
    )
    expect(result.first.inbox).toBe(24)
    expect(result.whileHeld).toEqual(["old-3", "young"])
    expect(result.second.inbox).toBe(1)
    expect(result.after).toEqual(["young"])
  })
})

describe("Retention of the kernel's tables (the embedded PGlite server of npm start)", () => {
  const dir = mkdtempSync(join(tmpdir(), "retention-pglite-"))
  let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined
  afterAll(async () => {
    await embedded?.stop()
    rmSync(dir, { recursive: true, force: true })
  })
  beforeAll(async () => {
    embedded = await startEmbeddedPostgres(join(dir, "data"), await freePort())
  }, 60_000)
  kernelCases(() => embedded!.url)
})
