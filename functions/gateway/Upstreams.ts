import { type Readable, Transform } from "node:stream"
import { Context, Effect, Layer, Metric, Option, Schema } from "effect"
import type { BalancedPool, Pool } from "undici"
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

/** Why an upstream request has no answer. */
export type UpstreamFailure = UpstreamUnavailable | UpstreamTimeout | BodyTooLarge

/** True for a failure of `forwardNow` (an answer has no tag). */
export const isFailure = (outcome: UpstreamResponse | UpstreamFailure): outcome is UpstreamFailure => "_tag" in outcome

/** undici's pool classes, loaded once (`warm`). */
type Undici = {
  readonly Pool: typeof import("undici").Pool
  readonly BalancedPool: typeof import("undici").BalancedPool
}

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
    forward(request: ForwardRequest): Effect.Effect<UpstreamResponse, UpstreamFailure>
    /** True when `forwardNow` can start a request to the upstream at once (its origin known, undici loaded). */
    readyNow(upstream: string): boolean
    /**
     * `forward` without a fiber, for the gateway's hot path (only once `readyNow`): `done` is called once with the
     * answer or the failure, never after the returned abort was called (the client went away).
     */
    forwardNow(request: ForwardRequest, done: (outcome: UpstreamResponse | UpstreamFailure) => void): () => void
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
        // The pool class once loaded, for the hot path (which does not wait for the import).
        let loaded: Undici | undefined
        const undici = yield* Effect.cached(
          Effect.promise(() =>
            import("undici").then((m) => {
              const exports = m.Pool ? m : (m as unknown as { default: typeof m }).default
              loaded = { Pool: exports.Pool, BalancedPool: exports.BalancedPool }
              return loaded
            }),
          ),
        )
        // Metrics are updated without an effect on the hot path: against the layer's services (its registry).
        const services = yield* Effect.context<never>()
        const pools = new Map<string, Pool | BalancedPool>()
        // With a registry whose instances come and go (etcd), each upstream's pool follows its live origins.
        const unsubscribes: Array<() => void> = []
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            for (const stop of unsubscribes) stop()
          }),
        )
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
        const poolOptions = { connections: options.connections, keepAliveTimeout: 30_000, connectTimeout: 2_000 }
        const poolOf = ({ Pool, BalancedPool }: Undici, name: string, origin: URL) => {
          let pool = pools.get(name)
          if (pool === undefined) {
            if (registry.changing) {
              // Calls are spread over every live instance; one that leaves is removed (its connections close).
              const balanced = new BalancedPool(
                registry.origins(name).map((url) => url.origin),
                poolOptions,
              )
              unsubscribes.push(
                registry.subscribe(name, (origins) => {
                  const live = new Set(origins.map((url) => url.origin))
                  for (const upstream of balanced.upstreams) if (!live.has(upstream)) balanced.removeUpstream(upstream)
                  for (const upstream of live) balanced.addUpstream(upstream)
                }),
              )
              pool = balanced
            } else pool = new Pool(origin.origin, poolOptions)
            pools.set(name, pool)
          }
          return pool
        }

        // One attempt: resolves with the response once its headers arrived, or rejects with the cause.
        const attempt = (
          pool: Pool | BalancedPool,
          request: ForwardRequest,
          body: Readable | undefined,
          signal: AbortSignal,
        ) =>
          pool.request({
            method: request.method as "GET",
            path: request.path,
            headers: request.headers,
            body: body ?? null,
            signal,
            headersTimeout: request.timeoutMs,
            bodyTimeout: request.timeoutMs,
          })

        // One request with its retries, as callbacks (the hot path runs it without a fiber): `done` once, unless
        // aborted first through the returned function.
        const start = (
          Pool: Undici,
          name: string,
          origin: URL,
          request: ForwardRequest,
          done: (outcome: UpstreamResponse | UpstreamFailure) => void,
        ) => {
          const breaker = breakerOf(name)
          const pool = poolOf(Pool, name, origin)
          const body = request.body ? limited(request.body, request.maxBodyBytes) : undefined
          const controller = new AbortController()
          const timer = setTimeout(() => controller.abort(new Timeout()), request.timeoutMs)
          const finish = (outcome: UpstreamResponse | UpstreamFailure) => {
            clearTimeout(timer)
            counterOf(name, isFailure(outcome) ? outcome._tag : "ok").updateUnsafe(1, services)
            done(outcome)
          }
          const unavailable = (reason: string, retryAfter: number) =>
            new UpstreamUnavailable({ upstream: name, retryAfter, reason })
          const run = (tries: number): void => {
            const admission = breaker.admit()
            if (admission._tag === "Rejected") {
              body?.stream.destroy()
              finish(unavailable("circuit open", Math.max(1, Math.ceil(admission.retryAfterMs / 1000))))
              return
            }
            attempt(pool, request, body?.stream, controller.signal).then(
              (response) => {
                breaker.success()
                // The server destroys the body when it sends none (204, 304, HEAD) or the client goes away: that
                // abort must not become an unhandled 'error' event (it would end the process).
                response.body.on("error", () => {})
                finish({ status: response.statusCode, headers: response.headers, body: response.body })
              },
              (error: unknown) => {
                if (body?.state.tooLarge) {
                  breaker.release(admission.probe)
                  return finish(new BodyTooLarge({ limit: request.maxBodyBytes }))
                }
                const timedOut =
                  controller.signal.reason instanceof Timeout || codeOf(error) === "UND_ERR_HEADERS_TIMEOUT"
                if (timedOut) {
                  breaker.failure()
                  return finish(new UpstreamTimeout({ upstream: name, timeoutMs: request.timeoutMs }))
                }
                // Interrupted (the client went away, or shutdown): nothing to answer.
                if (controller.signal.aborted) {
                  clearTimeout(timer)
                  breaker.release(admission.probe)
                  return
                }
                const code = codeOf(error)
                if (!CONNECTION.has(code)) {
                  breaker.release(admission.probe)
                  return finish(unavailable(code, 1))
                }
                breaker.failure()
                const replayable = IDEMPOTENT.has(request.method) && (body === undefined || body.state.bytes === 0)
                if (tries < options.retries && replayable) {
                  setTimeout(
                    () => {
                      if (controller.signal.aborted) clearTimeout(timer)
                      else run(tries + 1)
                    },
                    25 * 2 ** tries,
                  )
                  return
                }
                finish(unavailable(code, 1))
              },
            )
          }
          run(0)
          return () => controller.abort()
        }

        const send = (Pool: Undici, name: string, origin: URL, request: ForwardRequest) =>
          Effect.callback<UpstreamResponse, UpstreamFailure>((resume) => {
            const abort = start(Pool, name, origin, request, (outcome) =>
              resume(isFailure(outcome) ? Effect.fail(outcome) : Effect.succeed(outcome)),
            )
            return Effect.sync(abort)
          })

        // `send` counts its outcome in the metrics; an unknown upstream is counted here.
        const forward = (request: ForwardRequest) =>
          Effect.gen(function* () {
            const origin = yield* registry.resolve(request.upstream)
            if (Option.isNone(origin)) {
              const error = new UpstreamUnavailable({ upstream: request.upstream, retryAfter: 5, reason: "unknown" })
              yield* Metric.update(counterOf(request.upstream, error._tag), 1)
              return yield* error
            }
            return yield* send(yield* undici, request.upstream, origin.value, request)
          })

        const readyNow = (upstream: string) => loaded !== undefined && registry.resolveNow(upstream) !== undefined
        const forwardNow = (request: ForwardRequest, done: (outcome: UpstreamResponse | UpstreamFailure) => void) => {
          const origin = registry.resolveNow(request.upstream)
          if (loaded === undefined || origin === undefined) throw new Error(`${request.upstream} is not ready`)
          return start(loaded, request.upstream, origin, request, done)
        }

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
        return Upstreams.of({ forward, readyNow, forwardNow, circuits, warm: Effect.asVoid(undici) })
      }),
    )
}
