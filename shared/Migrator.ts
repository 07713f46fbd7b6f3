import { createHash } from "node:crypto"
import { Effect } from "effect"
import type pg from "pg"
import { assertIdentifier, Db, DbError } from "./Db.ts"

/** One forward-only migration: an ordered id and the SQL that applies it. Never edit one that has shipped. */
export interface Migration {
  readonly id: string
  readonly sql: string
}

const MIGRATION_TIMEOUT_MS = 30 * 60_000

const checksumOf = (migration: Migration) => createHash("sha256").update(migration.sql).digest("hex")

/**
 * Applies pending migrations into the service schema under an advisory lock; returns the ids applied now.
 * When everything is already applied (every start but the first after a release) it costs one query, no lock.
 */
export const migrate = Effect.fn("Migrator.migrate")(function* (migrations: ReadonlyArray<Migration>) {
  const db = yield* Db
  const schema = assertIdentifier(db.schema)
  const ordered = [...migrations].sort((a, b) => a.id.localeCompare(b.id))
  const upToDate = yield* db
    .query<{ id: string; checksum: string }>(`SELECT id, checksum FROM ${schema}.schema_migrations`)
    .pipe(
      Effect.map((rows) => {
        const applied = new Map(rows.map((r) => [r.id, r.checksum]))
        return ordered.every((m) => applied.get(m.id) === checksumOf(m))
      }),
      Effect.orElseSucceed(() => false),
    )
  if (upToDate) return []
  return yield* db.withConnection((client) => {
    // A migration may rewrite a large table and may wait for another instance's: no per-query bounds here (the
    // pool's are for requests). `query_timeout` per query is read by pg though its types omit it.
    const exec = (sql: string, params?: Array<unknown>) =>
      Effect.tryPromise({
        try: () => client.query({ text: sql, values: params, query_timeout: MIGRATION_TIMEOUT_MS } as pg.QueryConfig),
        catch: (cause) => new DbError({ message: `migration failed: ${String(cause)}`, cause }),
      })
    return Effect.gen(function* () {
      yield* exec("SET statement_timeout = 0")
      // Session-level lock keyed by schema: a second instance waits here until the first is done.
      yield* exec("SELECT pg_advisory_lock(hashtext($1))", [`migrations:${schema}`])
      yield* exec(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
      yield* exec(
        `CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
           id text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
      )
      const applied = new Map(
        (yield* exec(`SELECT id, checksum FROM ${schema}.schema_migrations`)).rows.map((r) => [r.id, r.checksum]),
      )
      const done: Array<string> = []
      for (const migration of ordered) {
        const checksum = checksumOf(migration)
        const previous = applied.get(migration.id)
        if (previous !== undefined) {
          if (previous !== checksum) {
            return yield* new DbError({
              message: `migration ${migration.id} changed after it was applied`,
              cause: null,
            })
          }
          continue
        }
        yield* exec("BEGIN")
        yield* exec(`SET LOCAL search_path TO ${schema}, public`)
        yield* Effect.onError(
          Effect.andThen(
            exec(migration.sql),
            exec(`INSERT INTO ${schema}.schema_migrations (id, checksum) VALUES ($1, $2)`, [migration.id, checksum]),
          ),
          () => Effect.ignore(exec("ROLLBACK")),
        )
        yield* exec("COMMIT")
        done.push(migration.id)
      }
      return done
    }).pipe(
      // A failed unlock must not return a locked session to the pool: dying makes withConnection destroy it.
      Effect.ensuring(Effect.orDie(exec("SELECT pg_advisory_unlock_all(); RESET statement_timeout"))),
    )
  })
})
