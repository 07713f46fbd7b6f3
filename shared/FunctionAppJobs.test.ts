// A function's jobs declared in its app definition (FunctionApp.define `jobs`): its container runs them on the real
// Postgres in `<DB_SCHEMA>_jobs`, its route handlers enqueue them through `Jobs.Jobs`, and the handlers run on the
// function's own services.
import { randomBytes } from "node:crypto"
import { Context, Effect, Layer, Schema } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { deadLettersOf } from "../scripts/dead-letters.ts"
import { Refused, Verifier } from "./access/Authentication.ts"
import * as Route from "./access/Route.ts"
import { OPENAPI_PATH } from "./access/RouteGuard.ts"
import * as Cfg from "./Config.ts"
import * as FunctionApp from "./FunctionApp.ts"
import * as Jobs from "./Jobs.ts"
import * as Kernel from "./Kernel.ts"
import { kernelMigrations } from "./KernelMigrations.ts"
import { defineModule } from "./Module.ts"
import { deleteWhere } from "./Retention.ts"
import { type AppUnderTest, startApp } from "./testing/appHarness.ts"
import { sql } from "./testing/harness.ts"

const manifest = defineModule({
  name: "chores",
  version: "0.0.1",
  description: "A function with jobs",
  ports: { http: 18_098 },
  dependsOn: [],
  permissions: [],
  events: { publishes: [], consumes: [] },
  migrations: [],
})

// The function's own service the job's handler uses.
class Ledger extends Context.Service<Ledger, { readonly done: Array<unknown> }>()("test/Ledger") {}

class ChoresApi extends HttpApi.make("chores").add(
  HttpApiGroup.make("chores").add(
    HttpApiEndpoint.post("add", "/api/v1/chores", {
      payload: Schema.Struct({ chore: Schema.String }),
      success: Schema.Struct({ id: Schema.String }),
    }).pipe(Route.open()),
  ),
) {}

const HttpLive = HttpApiBuilder.layer(ChoresApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide(
    HttpApiBuilder.group(
      ChoresApi,
      "chores",
      Effect.fn(function* (handlers) {
        const jobs = yield* Jobs.Jobs
        return handlers.handle("add", ({ payload }) =>
          Effect.map(jobs.enqueue("do-chore", payload, { key: payload.chore }), (id) => ({ id })).pipe(Effect.orDie),
        )
      }),
    ),
  ),
)

const NoTokens = Layer.succeed(
  Verifier,
  Verifier.of({
    authenticate: () => Effect.fail(new Refused({ reason: "no tokens here" })),
    authenticateNow: () => undefined,
  }),
)

const config = Cfg.load({ ...Cfg.base({ httpPort: manifest.ports.http }), ...Cfg.database(manifest.name) })

const app = FunctionApp.define({
  manifest,
  api: ChoresApi,
  config,
  http: HttpLive,
  jobs: {
    "do-chore": Jobs.onDemand((data) =>
      Effect.flatMap(Effect.service(Ledger), (ledger) => Effect.sync(() => void ledger.done.push(data))),
    ),
    "refuse-chore": Jobs.onDemand(() => Effect.fail(new Error("this chore always fails")), { retry: { limit: 0 } }),
  },
  services: (c) =>
    Layer.mergeAll(NoTokens, Layer.succeed(Ledger, { done: [] })).pipe(
      Layer.provideMerge(Kernel.base({ service: manifest.name, version: manifest.version, logLevel: c.logLevel })),
    ),
})

let running: AppUnderTest
const schema = `t_chores_${randomBytes(4).toString("hex")}`

beforeAll(async () => {
  running = await startApp(app, { env: { DB_SCHEMA: schema } })
}, 60_000)
afterAll(async () => {
  await running?.close()
  await sql(`DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
})

describe("a function's declared jobs", () => {
  it("are enqueued by its routes, run once per key on its services, and reported ready", async () => {
    const add = (chore: string) =>
      fetch(`${running.url}/api/v1/chores`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ chore }),
      })
    const first = await add("dishes")
    expect(first.status).toBe(200)
    expect((await add("dishes")).status).toBe(200)
    const ledger = Context.get(running.running.context as Context.Context<Ledger>, Ledger)
    const deadline = Date.now() + 15_000
    while (ledger.done.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => setTimeout(r, 1_500))
    expect(ledger.done).toEqual([{ chore: "dishes" }])
    const ready = (await (await fetch(`${running.url}/readyz`)).json()) as { checks: Record<string, string> }
    expect(ready.checks.jobs).toBe("ok")
    // The run is counted in the function's own metrics (the layer's registry, not a detached one).
    const metrics = await (await fetch(`${running.url}/metrics`)).text()
    const counted = metrics
      .split("\n")
      .find(
        (line) => line.startsWith("jobs_runs_total") && line.includes('job="do-chore"') && line.includes("completed"),
      )
    expect(counted, metrics.slice(0, 2_000)).toMatch(/ 1$/)
    const [queue] = await sql(`SELECT count(*)::int AS n FROM ${schema}_jobs.queue WHERE name = 'do-chore'`)
    expect(queue!.n).toBe(1)
  })

  it("that fail their last attempt are listed for the operator (npm run dead-letters)", async () => {
    const jobs = Context.get(running.running.context as Context.Context<Jobs.Jobs>, Jobs.Jobs)
    const id = await Effect.runPromise(jobs.enqueue("refuse-chore", { chore: "windows" }))
    const url = process.env.DATABASE_URL!
    const deadline = Date.now() + 30_000
    let found = await deadLettersOf(app, { url, schema })
    while (found.jobs.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      found = await deadLettersOf(app, { url, schema })
    }
    expect(found.jobs).toEqual([
      expect.objectContaining({ id, job: "refuse-chore", data: { chore: "windows" }, attempts: 1 }),
    ])
    expect(JSON.stringify(found.jobs[0]!.error)).toContain("this chore always fails")
    // The function has no event tables: no event dead letters, and no failure for it.
    expect(found.events).toEqual([])
    expect((await deadLettersOf(app, { url, schema, job: "do-chore" })).jobs).toEqual([])
    await expect(deadLettersOf(app, { url, schema, job: "nope" })).rejects.toThrow(/has no job nope/)
  })
})

// A function with the kernel's tables: its app runs the kernel's `retention` job over the kernel's rules and its own.
const tidyManifest = defineModule({
  name: "tidy",
  version: "0.0.1",
  description: "A function with the kernel's tables and a table of its own to prune",
  ports: { http: 18_099 },
  dependsOn: [],
  permissions: [],
  events: { publishes: [], consumes: [] },
  migrations: [
    ...kernelMigrations,
    { id: "0100_crumbs", sql: "CREATE TABLE crumbs (id int PRIMARY KEY, dropped_at timestamptz NOT NULL)" },
  ],
})

const tidyConfig = Cfg.load({ ...Cfg.base({ httpPort: tidyManifest.ports.http }), ...Cfg.database(tidyManifest.name) })

const tidy = FunctionApp.define({
  manifest: tidyManifest,
  api: ChoresApi,
  config: tidyConfig,
  http: HttpLive,
  retention: () => [{ name: "crumbs", keepDays: 1, delete: deleteWhere("crumbs", "id", "dropped_at < $2") }],
  services: (c) => Layer.mergeAll(NoTokens, Kernel.foundation(tidyManifest, c)),
})

describe("the kernel's retention job", () => {
  it("is declared by every function with the kernel's tables and prunes them with the function's own rules", async () => {
    expect(Object.keys(tidy.jobs)).toEqual(["retention"])
    expect(tidy.jobs.retention?.schedule).toBe("*/10 * * * *")
    const tidySchema = `t_tidy_${randomBytes(4).toString("hex")}`
    const started = await startApp(tidy, { env: { DB_SCHEMA: tidySchema } })
    try {
      await sql(`INSERT INTO ${tidySchema}.crumbs VALUES (1, now() - interval '2 days'), (2, now())`)
      await sql(`INSERT INTO ${tidySchema}.inbox (consumer, event_id, processed_at)
                 VALUES ('c', 'old', now() - interval '15 days'), ('c', 'young', now())`)
      // The cron tick is every 10 minutes; the same job enqueued runs now.
      const jobs = Context.get(started.running.context as Context.Context<Jobs.Jobs>, Jobs.Jobs)
      await Effect.runPromise(jobs.enqueue("retention", {}))
      const left = async () => ({
        crumbs: (await sql(`SELECT id FROM ${tidySchema}.crumbs ORDER BY id`)).map((r) => r.id),
        inbox: (await sql(`SELECT event_id FROM ${tidySchema}.inbox`)).map((r) => r.event_id),
      })
      const deadline = Date.now() + 30_000
      while ((await left()).crumbs.length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
      expect(await left()).toEqual({ crumbs: [2], inbox: ["young"] })
      const metrics = await (await fetch(`${started.url}/metrics`)).text()
      expect(metrics).toMatch(/retention_pruned_total\{[^}]*rule="crumbs"[^}]*\} 1/)
    } finally {
      await started.close()
      await sql(`DROP SCHEMA IF EXISTS ${tidySchema}_jobs CASCADE`)
      await sql(`DROP SCHEMA IF EXISTS ${tidySchema} CASCADE`)
    }
  }, 90_000)
})
