// A function that fails on purpose, for the error bus's tests (shared/ErrorCapture.test.ts): a route that dies (its
// message carries an email address and a JWT), routes answering the caller's mistakes (404, 400) and an outage (503),
// a job that fails its every attempt, and a route that leaves a promise rejected with nobody to catch it.
// shared/testing/faultsMain.ts runs it as a container entry does.
import { Effect, Layer, Schema } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { Refused, Verifier } from "../access/Authentication.ts"
import * as Route from "../access/Route.ts"
import { OPENAPI_PATH } from "../access/RouteGuard.ts"
import * as Cfg from "../Config.ts"
import * as FunctionApp from "../FunctionApp.ts"
import * as Jobs from "../Jobs.ts"
import * as Kernel from "../Kernel.ts"
import { defineModule } from "../Module.ts"
import { NotFound, ServiceUnavailable } from "../Problem.ts"

/** The fixture's manifest. */
export const manifest = defineModule({
  name: "faults",
  version: "0.3.1",
  description: "fails on purpose",
  ports: { http: 18_097 },
  dependsOn: [],
  permissions: [],
  events: { publishes: [], consumes: [] },
  migrations: [],
})

/** What the dying route's defect says: an email address and a JWT, neither of which may leave the process. */
export const SECRET_EMAIL = "grace.hopper@example.com"
export const SECRET_JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJncmFjZSJ9.c2lnbmVkLWJ5LXNvbWVvbmU"

const Done = Schema.Struct({ ok: Schema.Boolean })

class FaultsApi extends HttpApi.make("faults").add(
  HttpApiGroup.make("faults")
    .add(
      HttpApiEndpoint.get("die", "/api/v1/faults/die/:id", { params: { id: Schema.String }, success: Done }).pipe(
        Route.open(),
      ),
    )
    .add(
      HttpApiEndpoint.get("missing", "/api/v1/faults/missing", { success: Done, error: NotFound }).pipe(Route.open()),
    )
    .add(
      HttpApiEndpoint.post("strict", "/api/v1/faults/strict", {
        payload: Schema.Struct({ n: Schema.Int }),
        success: Done,
      }).pipe(Route.open()),
    )
    .add(
      HttpApiEndpoint.get("outage", "/api/v1/faults/outage", { success: Done, error: ServiceUnavailable }).pipe(
        Route.open(),
      ),
    )
    .add(HttpApiEndpoint.post("doom", "/api/v1/faults/doom", { success: Done }).pipe(Route.open()))
    .add(HttpApiEndpoint.post("reject", "/api/v1/faults/reject", { success: Done }).pipe(Route.open())),
) {}

const HttpLive = HttpApiBuilder.layer(FaultsApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide(
    HttpApiBuilder.group(
      FaultsApi,
      "faults",
      Effect.fn(function* (handlers) {
        const jobs = yield* Jobs.Jobs
        return handlers
          .handle("die", ({ params }) =>
            Effect.die(new TypeError(`ledger ${params.id} of ${SECRET_EMAIL} unreadable with ${SECRET_JWT}`)),
          )
          .handle("missing", () => Effect.fail(new NotFound({ detail: "no such thing" })))
          .handle("strict", () => Effect.succeed({ ok: true }))
          .handle("outage", () => Effect.fail(new ServiceUnavailable({ detail: "the store is away" })))
          .handle("doom", () => Effect.as(Effect.orDie(jobs.enqueue("doomed", {})), { ok: true }))
          .handle("reject", () =>
            Effect.sync(() => {
              // Nobody awaits it: the process-level handler (Main) meets it.
              void Promise.reject(new RangeError(`nobody caught this for ${SECRET_EMAIL}`))
              return { ok: true }
            }),
          )
      }),
    ),
  ),
)

// Public routes only: no token is ever verified.
const NoTokens = Layer.succeed(
  Verifier,
  Verifier.of({
    authenticate: () => Effect.fail(new Refused({ reason: "no tokens here" })),
    authenticateNow: () => undefined,
  }),
)

/** The fixture as its entries run it; its job runs on the test Postgres (DATABASE_URL, DB_SCHEMA). */
export const app = FunctionApp.define({
  manifest,
  api: FaultsApi,
  config: Cfg.load({ ...Cfg.base({ httpPort: manifest.ports.http }), ...Cfg.database(manifest.name) }),
  http: HttpLive,
  jobs: {
    // One retry: only the last of its two attempts is a report.
    doomed: Jobs.onDemand(() => Effect.die(new Error("the doomed job fails, as always")), {
      retry: { limit: 1, delaySeconds: 1, maxDelaySeconds: 1 },
    }),
  },
  services: (config) =>
    NoTokens.pipe(
      Layer.provideMerge(Kernel.base({ service: manifest.name, version: manifest.version, logLevel: config.logLevel })),
    ),
})
