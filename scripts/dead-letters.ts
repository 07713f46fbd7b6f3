// `npm run dead-letters -- <function> [--job <name>] [--limit <n>] [--json]`: what failed for good in a function, for
// the operator who has to decide about each: its jobs' dead letters (runs that failed their last attempt, from
// `<DB_SCHEMA>_jobs`) and its event consumers' dead letters (events a handler kept failing on, from `dead_letters`).
// Reads the function's database as the function does (DATABASE_URL, DB_SCHEMA, .env outside production); never
// starts a worker, so it runs beside the live instances.
import { existsSync } from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { Effect, Layer, Redacted } from "effect"
import { defaultSchema, loadDotEnv } from "../shared/Config.ts"
import type { DefinedApp } from "../shared/FunctionApp.ts"
import { Health } from "../shared/Health.ts"
import * as Jobs from "../shared/Jobs.ts"

/** One function's dead letters, newest first. */
export interface DeadLetters {
  readonly jobs: ReadonlyArray<Jobs.DeadLetter>
  readonly events: ReadonlyArray<{
    readonly id: string
    readonly group: string
    readonly topic: string
    readonly eventId: string | null
    readonly reason: string
    readonly error: string
    readonly attempts: number
    readonly failedAt: Date
  }>
}

/** Reads the dead letters of `app`'s jobs (all, or `job`) and of its event consumers, at most `limit` of each. */
export const deadLettersOf = (
  app: DefinedApp,
  options: { readonly url: string; readonly schema: string; readonly job?: string; readonly limit?: number },
): Promise<DeadLetters> => {
  const limit = options.limit ?? 50
  const names = Object.keys(app.jobs).filter((name) => options.job === undefined || name === options.job)
  if (options.job !== undefined && names.length === 0) {
    return Promise.reject(
      new Error(
        `${app.manifest.name} has no job ${options.job} (it has: ${Object.keys(app.jobs).join(", ") || "none"})`,
      ),
    )
  }
  // Listing never installs the job store: a function that never ran (or a mistyped DB_SCHEMA) has no dead letters.
  const store = Jobs.layer({
    service: app.manifest.name,
    url: Redacted.make(options.url),
    schema: options.schema,
    jobs: app.jobs,
    readOnly: true,
  }).pipe(Layer.provide(Health.layer)) as Layer.Layer<Jobs.Jobs, Jobs.JobsError>
  return Effect.runPromise(
    Effect.gen(function* () {
      const pg = yield* Effect.promise(() => import("pg"))
      const client = new pg.default.Client({ connectionString: options.url })
      yield* Effect.acquireRelease(
        Effect.promise(() => client.connect()),
        () => Effect.promise(() => client.end()),
      )
      const installed = yield* Effect.promise(() =>
        client.query("SELECT 1 FROM information_schema.schemata WHERE schema_name = $1", [`${options.schema}_jobs`]),
      )
      const failedJobs =
        installed.rows.length === 0
          ? []
          : yield* Effect.gen(function* () {
              const jobs = yield* Jobs.Jobs
              return (yield* Effect.forEach(names, (name) => jobs.deadLetters(name, limit))).flat()
            }).pipe(Effect.provide(store))
      const events = yield* Effect.promise(() =>
        client
          .query(
            `SELECT id::text, group_id, topic, event_id, reason, error, attempts, created_at
             FROM ${options.schema}.dead_letters ORDER BY id DESC LIMIT $1`,
            [limit],
          )
          .then((result) => result.rows)
          // A function without the kernel's event tables has no event dead letters.
          .catch((error: { code?: string }) => (error.code === "42P01" ? [] : Promise.reject(error))),
      )
      return {
        jobs: failedJobs.sort((a, b) => b.failedAt.getTime() - a.failedAt.getTime()).slice(0, limit),
        events: events.map((row) => ({
          id: row.id as string,
          group: row.group_id as string,
          topic: row.topic as string,
          eventId: row.event_id as string | null,
          reason: row.reason as string,
          error: row.error as string,
          attempts: row.attempts as number,
          failedAt: row.created_at as Date,
        })),
      }
    }).pipe(Effect.scoped),
  )
}

const main = async () => {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      job: { type: "string" },
      limit: { type: "string", default: "50" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  })
  const name = positionals[0]
  if (values.help || name === undefined) {
    process.stdout.write("usage: npm run dead-letters -- <function> [--job <name>] [--limit <n>] [--json]\n")
    process.exit(name === undefined && !values.help ? 2 : 0)
  }
  const file = join(import.meta.dirname, "..", "functions", name, "App.ts")
  if (!/^[a-z][a-z0-9-]*$/.test(name) || !existsSync(file)) {
    process.stderr.write(`no function ${name} with an App.ts under functions/\n`)
    process.exit(2)
  }
  const limit = Number(values.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
    process.stderr.write("--limit must be an integer 1-10000\n")
    process.exit(2)
  }
  if (process.env.NODE_ENV !== "production") loadDotEnv()
  const url = process.env.DATABASE_URL
  if (url === undefined) {
    process.stderr.write("DATABASE_URL is not set: the dead letters live in the function's database\n")
    process.exit(2)
  }
  const schema = process.env.DB_SCHEMA ?? defaultSchema(name)
  const { app } = (await import(pathToFileURL(file).href)) as { app: DefinedApp }
  const found = await deadLettersOf(app, {
    url,
    schema,
    limit,
    ...(values.job === undefined ? {} : { job: values.job }),
  })
  if (values.json) {
    process.stdout.write(`${JSON.stringify(found, null, 2)}\n`)
  } else {
    process.stdout.write(
      `${name}: ${found.jobs.length} job dead letter(s), ${found.events.length} event dead letter(s)\n`,
    )
    for (const d of found.jobs) {
      process.stdout.write(
        `job   ${d.failedAt.toISOString()}  ${d.job}  ${d.id}  attempts ${d.attempts}  ${JSON.stringify(d.error).slice(0, 200)}\n`,
      )
    }
    for (const d of found.events) {
      process.stdout.write(
        `event ${d.failedAt.toISOString()}  ${d.group} ← ${d.topic}  ${d.eventId ?? "-"}  ${d.reason}, attempts ${d.attempts}  ${d.error.slice(0, 200)}\n`,
      )
    }
  }
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  })
}
