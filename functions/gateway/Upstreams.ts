import { type Readable, Transform } from "node:stream"
import { Context, Effect, Layer, Metric, Option, Schema } from "effect"
import type { Pool } from "undici"
import { CircuitBreaker, type CircuitState } from "./CircuitBreaker.ts"
import { ServiceRegistry } from "./ServiceRegistry.ts"

/** One request to forward: target upstream, method, path with query, prepared headers and the streamed body. */
export interface ForwardRequest {
  readonly upstream: string
  readonly method: string
  /** Path and query string, as the client sent them. */
  readonly path: string
  readonly headers: Record<string, string | Array<string>>
  /** The client's body, streamed (undefined when the request has none). */
  readonly body: Readable | undefined
  /** Bodies larger than this fail with `BodyTooLarge` while streaming (chunked uploads have no length up front). */
  readonly maxBodyBytes: number
  /** How long the upstream may take to start answering (and to pause between body chunks). */
  readonly timeoutMs: number
}

/** The upstream's answer: status, headers (hop-by-hop ones still in) and the body as a stream. */
export interface UpstreamResponse {
  readonly status: number
  readonly headers: Record<string, string | Array<string> | undefined>
  readonly body: Readable
}

/** The upstream cannot be reached (refused, reset, unknown) or its circuit is open; `retryAfter` in seconds. */
export class UpstreamUnavailable extends Schema.TaggedError<UpstreamUnavailable>()("UpstreamUnavailable", {
  upstream: Schema.String,
  retryAfter: Schema.Int,
  reason: Schema.String,
}) {}

/** The upstream did not answer within the route's timeout. */
export class UpstreamTimeout extends Schema.TaggedError<UpstreamTimeout>()("UpstreamTimeout", {
  upstream: Schema.String,
  timeoutMs: Schema.Int,
}) {}

/** The client's streamed body went over the limit. */
export class BodyTooLarge extends Schema.TaggedError<BodyTooLarge>()("BodyTooLarge", { limit: Schema.Int }) {}

/** Methods safe to send twice (RFC 9110 §9.2.2). */
export const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])

/** How the pools, retries and circuit breakers behave. */
export interface UpstreamsOptions {
  /** Keep-alive connections per upstream. */
  readonly connections: number
  /** Extra attempts of an idempotent request whose connection failed before any body byte was sent. */
  readonly retries: number
  readonly breakerFailures: number
  readonly breakerCooldownMs: number
}

const forwarded = Metric.counter("gateway_upstream_requests_total", {
  description: "Requests forwarded to upstreams, by upstream and outcome",
  incremental: true,
})

// Errors of the connection itself (nothing was answered): retryable for idempotent requests, count against the circuit.
const CONNECTION = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_CLOSED",
])

const codeOf = (error: unknown): string => {
  let current: unknown = error
  for (let depth = 0; depth < 4 && current !== null && typeof current === "object"; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === "string" && code !== "UND_ERR_ABORTED") return code
    current = (current as { cause?: unknown }).cause
  }
  return "UNKNOWN"
}

class Timeout extends Error {}

// Counts the bytes of a streamed body; past the limit it fails the stream (and with it the upstream request).
const limited = (body: Readable, limit: number) => {
  const state = { bytes: 0, tooLarge: false }
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      state.bytes += chunk.length
      if (state.bytes > limit) {
        state.tooLarge = true
        callback(new Error("request body too large"))
      } else callback(null, chunk)
    },
  })
  body.on("error", (error) => counter.destroy(error))
  // Failures reach undici through the pipe; a late one must not become an unhandled 'error' event.
  counter.on("error", () => {})
  body.pipe(counter)
  return { stream: counter, state }
}

/**
 * Forwards requests to the upstream functions over keep-alive undici pools (one per upstream), streaming both bodies,
 * with a deadline per request, retries of idempotent requests on connection errors, and a circuit breaker per upstream.
 */
export class Upstreams extends Context.Service<
  Upstreams,
  {
    forward(
      request: ForwardRequest,
    ): Effect.Effect<UpstreamResponse, UpstreamUnavailable | UpstreamTimeout | BodyTooLarge>
    /** Each upstream's circuit state (for `/readyz/upstreams` and tests). */
    readonly circuits: Effect.Effect<Record<string, CircuitState>>
    /** Loads the HTTP client (undici, ≈ 720 KB): run once the server listens, so it stays off the way to `/healthz`. */
    readonly warm: Effect.Effect<void>
  }
>()("gateway/Upstreams") {
  /** Pools and breakers for every upstream of the registry; pools close with the layer. */
  static readonly layer = (options: UpstreamsOptions) =>
    Layer.effect(
      Upstreams,
      Effect.gen(function* () {
        const registry = yield* ServiceRegistry
        // A request that comes before `warm` finished waits for the same import.
        // undici is CommonJS: Node hands its exports as named ones, a bundle (the image) only as `default`.
        const undici = yield* Effect.cached(
          Effect.promise(() =>
            import("undici").then((m) => ({ Pool: m.Pool ?? (m as unknown as { default: typeof m }).default.Pool })),
          ),
        )
        const pools = new Map<string, Pool>()
        const breakers = new Map<string, CircuitBreaker>()
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => Promise.allSettled([...pools.values()].map((pool) => pool.close()))),
        )
        const breakerOf = (name: string) => {
          let breaker = breakers.get(name)
          if (breaker === undefined) {
            breaker = new CircuitBreaker({
              failureThreshold: options.breakerFailures,
              cooldownMs: options.breakerCooldownMs,
            })
            breakers.set(name, breaker)
          }
          return breaker
        }
        const poolOf = (Pool: typeof import("undici").Pool, name: string, origin: URL) => {
          let pool = pools.get(name)
          if (pool === undefined) {
            pool = new Pool(origin.origin, {
              connections: options.connections,
              keepAliveTimeout: 30_000,
              connectTimeout: 2_000,
            })
            pools.set(name, pool)
          }
          return pool
        }

        // One attempt: resolves with the response once its headers arrived, or rejects with the cause.
        const attempt = (pool: Pool, request: ForwardRequest, body: Readable | undefined, signal: AbortSignal) =>
          pool.request({
            method: request.method as "GET",
            path: request.path,
            headers: request.headers,
            body: body ?? null,
            signal,
            headersTimeout: request.timeoutMs,
            bodyTimeout: request.timeoutMs,
          })

        const send = (Pool: typeof import("undici").Pool, name: string, origin: URL, request: ForwardRequest) =>
          Effect.callback<UpstreamResponse, UpstreamUnavailable | UpstreamTimeout | BodyTooLarge>((resume) => {
            const breaker = breakerOf(name)
            const pool = poolOf(Pool, name, origin)
            const body = request.body ? limited(request.body, request.maxBodyBytes) : undefined
            const controller = new AbortController()
            const timer = setTimeout(() => controller.abort(new Timeout()), request.timeoutMs)
            const finish = () => clearTimeout(timer)
            const unavailable = (reason: string, retryAfter: number) =>
              new UpstreamUnavailable({ upstream: name, retryAfter, reason })
            const run = (tries: number): void => {
              const admission = breaker.admit()
              if (admission._tag === "Rejected") {
                finish()
                body?.stream.destroy()
                resume(Effect.fail(unavailable("circuit open", Math.max(1, Math.ceil(admission.retryAfterMs / 1000)))))
                return
              }
              attempt(pool, request, body?.stream, controller.signal).then(
                (response) => {
                  finish()
                  breaker.success()
                  // The server destroys the body when it sends none (204, 304, HEAD) or the client goes away: that
                  // abort must not become an unhandled 'error' event (it would end the process).
                  response.body.on("error", () => {})
                  resume(
                    Effect.succeed({ status: response.statusCode, headers: response.headers, body: response.body }),
                  )
                },
                (error: unknown) => {
                  if (body?.state.tooLarge) {
                    finish()
                    breaker.release(admission.probe)
                    return resume(Effect.fail(new BodyTooLarge({ limit: request.maxBodyBytes })))
                  }
                  const timedOut =
                    controller.signal.reason instanceof Timeout || codeOf(error) === "UND_ERR_HEADERS_TIMEOUT"
                  if (timedOut) {
                    finish()
                    breaker.failure()
                    return resume(Effect.fail(new UpstreamTimeout({ upstream: name, timeoutMs: request.timeoutMs })))
                  }
                  // Interrupted (the client went away, or shutdown): nothing to answer.
                  if (controller.signal.aborted) {
                    finish()
                    breaker.release(admission.probe)
                    return
                  }
                  const code = codeOf(error)
                  if (!CONNECTION.has(code)) {
                    finish()
                    breaker.release(admission.probe)
                    return resume(Effect.fail(unavailable(code, 1)))
                  }
                  breaker.failure()
                  const replayable = IDEMPOTENT.has(request.method) && (body === undefined || body.state.bytes === 0)
                  if (tries < options.retries && replayable) {
                    setTimeout(() => run(tries + 1), 25 * 2 ** tries)
                    return
                  }
                  finish()
                  resume(Effect.fail(unavailable(code, 1)))
                },
              )
            }
            run(0)
            return Effect.sync(() => controller.abort())
          })

        const forward = (request: ForwardRequest) =>
          Effect.gen(function* () {
            const origin = yield* registry.resolve(request.upstream)
            if (Option.isNone(origin)) {
              return yield* new UpstreamUnavailable({ upstream: request.upstream, retryAfter: 5, reason: "unknown" })
            }
            const { Pool } = yield* undici
            return yield* send(Pool, request.upstream, origin.value, request)
          }).pipe(
            Effect.tap(() => Metric.update(counterOf(request.upstream, "ok"), 1)),
            Effect.tapError((error) => Metric.update(counterOf(request.upstream, error._tag), 1)),
          )

        // The counter with its attributes, made once per upstream and outcome (not per request).
        const counters = new Map<string, Metric.Counter<number>>()
        const counterOf = (upstream: string, outcome: string) => {
          const key = `${upstream} ${outcome}`
          let counter = counters.get(key)
          if (counter === undefined) {
            counter = Metric.withAttributes(forwarded, { upstream, outcome })
            counters.set(key, counter)
          }
          return counter
        }

        const circuits = Effect.sync(() =>
          Object.fromEntries(registry.names.map((name) => [name, breakerOf(name).state] as const)),
        )
        return Upstreams.of({ forward, circuits, warm: Effect.asVoid(undici) })
      }),
    )
}
