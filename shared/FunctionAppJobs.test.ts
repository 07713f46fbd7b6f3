// A function's jobs declared in its app definition (FunctionApp.define `jobs`): its container runs them on the real
// Postgres in `<DB_SCHEMA>_jobs`, its route handlers enqueue them through `Jobs.Jobs`, and the handlers run on the
// function's own services.
import { randomBytes } from "node:crypto"
import { Context, Effect, Layer, Schema } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Refused, Verifier } from "./access/Authentication.ts"
import * as Route from "./access/Route.ts"
import { OPENAPI_PATH } from "./access/RouteGuard.ts"
import * as Cfg from "./Config.ts"
import * as FunctionApp from "./FunctionApp.ts"
import * as Jobs from "./Jobs.ts"
import * as Kernel from "./Kernel.ts"
import { defineModule } from "./Module.ts"
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
})
