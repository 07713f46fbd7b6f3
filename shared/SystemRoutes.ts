import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Health } from "./Health.ts"
import { routeLabel } from "./HttpMetrics.ts"
import * as Problem from "./Problem.ts"

/** `/healthz` (the process is alive), `/readyz` (each dependency answers; 503 names the failing ones), `/metrics`. */
export const systemRoutes = Layer.mergeAll(
  HttpRouter.add("GET", "/healthz", Effect.succeed(HttpServerResponse.jsonUnsafe({ status: "ok" }))),
  // The registry is taken when the routes are built, not per request: a Lambda's web handler runs requests with the
  // router's outputs only, not with what the app's layers were provided.
  Layer.unwrap(
    Effect.map(Effect.service(Health), (health) =>
      HttpRouter.add(
        "GET",
        "/readyz",
        Effect.gen(function* () {
          const readiness = yield* health.readiness
          if (readiness.ok) {
            // Ready, but serving without a dependency it can do without (Redis): say so, still 200.
            const degraded = Object.values(readiness.checks).includes("degraded")
            return HttpServerResponse.jsonUnsafe({ status: degraded ? "degraded" : "ok", checks: readiness.checks })
          }
          const failing = Object.entries(readiness.checks)
            .filter(([, r]) => r !== "ok")
            .map(([name]) => name)
          return Problem.response(503, `not ready: ${failing.join(", ")}`, { checks: readiness.checks })
        }),
      ),
    ),
  ),
  PrometheusMetrics.layerHttp({ path: "/metrics" }),
).pipe(Layer.provide(routeLabel))
