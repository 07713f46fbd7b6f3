// A function without gRPC, the smallest there is: a manifest with an HTTP port only, one public route, and a container
// entry through the kernel's `FunctionApp.define` and `Main.run` with no Grpc.ts module. shared/Main.test.ts runs it.
import { Effect, Layer, Schema } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { Refused, Verifier } from "../access/Authentication.ts"
import * as Route from "../access/Route.ts"
import { OPENAPI_PATH } from "../access/RouteGuard.ts"
import * as Cfg from "../Config.ts"
import * as FunctionApp from "../FunctionApp.ts"
import * as Kernel from "../Kernel.ts"
import * as Main from "../Main.ts"
import { defineModule } from "../Module.ts"

/** The fixture's manifest: no gRPC port. */
export const manifest = defineModule({
  name: "hello",
  version: "0.0.1",
  description: "HTTP only",
  ports: { http: 18_099 },
  dependsOn: [],
  permissions: [],
  events: { publishes: [], consumes: [] },
  migrations: [],
})

class HelloApi extends HttpApi.make("hello").add(
  HttpApiGroup.make("hello").add(
    HttpApiEndpoint.get("hello", "/api/v1/hello", { success: Schema.Struct({ hello: Schema.String }) }).pipe(
      Route.open(),
    ),
  ),
) {}

const HttpLive = HttpApiBuilder.layer(HelloApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide(
    HttpApiBuilder.group(HelloApi, "hello", (handlers) =>
      handlers.handle("hello", () => Effect.succeed({ hello: "world" })),
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

// With HELLO_HANG_ON_CLOSE=1: a part whose close never ends (as a client library's can), for the shutdown's deadline.
const hangsOnClose = Layer.effectDiscard(Effect.addFinalizer(() => Effect.never))

const app = FunctionApp.define({
  manifest,
  api: HelloApi,
  config: Cfg.load(Cfg.base({ httpPort: manifest.ports.http })),
  http: HttpLive,
  services: (config) =>
    Layer.merge(NoTokens, process.env.HELLO_HANG_ON_CLOSE === "1" ? hangsOnClose : Layer.empty).pipe(
      Layer.provideMerge(Kernel.base({ service: manifest.name, version: manifest.version, logLevel: config.logLevel })),
    ),
})

Main.run(app)
