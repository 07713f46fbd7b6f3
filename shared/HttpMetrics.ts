import { Context, Effect, Metric } from "effect"
import { HttpRouter } from "effect/http"

const requests = Metric.counter("http_server_requests_total", { description: "HTTP requests served" })
const errors = Metric.counter("http_server_errors_total", { description: "HTTP responses with status >= 500" })
const duration = Metric.histogram("http_server_request_duration_seconds", {
  description: "HTTP request duration",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
})

// The metrics with their attributes, made once per method, route and status (not per request).
const labelled = new Map<
  string,
  {
    readonly requests: Metric.Counter<number>
    readonly errors?: Metric.Counter<number>
    readonly duration: Metric.Histogram<number>
  }
>()

const metricsOf = (method: string, route: string, status: number) => {
  const key = `${method} ${route} ${status}`
  let metrics = labelled.get(key)
  if (metrics === undefined) {
    const attributes = { method, route, status: String(status) }
    metrics = {
      requests: Metric.withAttributes(requests, attributes),
      ...(status >= 500 ? { errors: Metric.withAttributes(errors, attributes) } : {}),
      duration: Metric.withAttributes(duration, { method, route }),
    }
    if (labelled.size < 10_000) labelled.set(key, metrics)
  }
  return metrics
}

/** Counts one answered request of a method and route without an effect, against the metrics registry of `services`. */
export type RequestRecorder = (services: Context.Context<never>, status: number, seconds: number) => void

/**
 * `recordRequest` without an effect, for one method and route (the caller's layer's registry in `services`): for a
 * hot path that runs outside a fiber (the gateway's). The labelled metrics are resolved once per status, not looked
 * up by a label string per request.
 */
export const requestRecorder = (method: string, route: string): RequestRecorder => {
  const byStatus = new Map<number, ReturnType<typeof metricsOf>>()
  return (services, status, seconds) => {
    let metrics = byStatus.get(status)
    if (metrics === undefined) {
      metrics = metricsOf(method, route, status)
      byStatus.set(status, metrics)
    }
    metrics.requests.updateUnsafe(1, services)
    metrics.duration.updateUnsafe(seconds, services)
    metrics.errors?.updateUnsafe(1, services)
  }
}

/** Counts one answered request in the RED metrics (`route` is the route template, never the raw path). */
export const recordRequest = (method: string, route: string, status: number, seconds: number): Effect.Effect<void> =>
  Effect.suspend(() => {
    const metrics = metricsOf(method, route, status)
    const counted = Effect.andThen(Metric.update(metrics.requests, 1), Metric.update(metrics.duration, seconds))
    return metrics.errors === undefined ? counted : Effect.andThen(counted, Metric.update(metrics.errors, 1))
  })

// Per-request cell the route middleware fills with the matched route template (low-cardinality metric label).
export const RouteCell = Context.Reference<{ route: string }>("shared/Server/RouteCell", {
  defaultValue: () => ({ route: "unmatched" }),
})

/** Route middleware: records the matched route template for the metrics of the global middleware. */
export const routeLabel = HttpRouter.middleware((httpEffect) =>
  Effect.gen(function* () {
    const cell = yield* RouteCell
    const context = yield* HttpRouter.RouteContext
    cell.route = context.route.path
    return yield* httpEffect
  }),
).layer
