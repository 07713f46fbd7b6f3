import { hostname } from "node:os"
import { isAbsolute, relative } from "node:path"
import type * as SentryCore from "@sentry/core"
import { Cause, Config, Context, Effect, Layer, Metric, Option, Redacted, Schema, Tracer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Logging from "./Logging.ts"
import { RequestId } from "./RequestContext.ts"

// The kernel's error bus (docs/errors.md): every defect a capture point meets (an HTTP answer of 500, an unexpected
// gRPC failure, a job's last attempt, an event handler's dead letter, what ends the process) becomes one scrubbed,
// fingerprinted, rate-limited event, sent in the background to a Sentry-compatible endpoint (`SENTRY_DSN`: Sentry or
// GlitchTip) and, outside production, kept in memory for `GET /_dev/errors`.
//
// The wire is Sentry's envelope protocol through @sentry/core (DSN parsing, the envelope, the endpoint's auth, and its
// transport: a bounded buffer of requests in flight, Sentry's 429 / X-Sentry-Rate-Limits back-off), loaded only when a
// DSN is set (its module graph takes ~190 ms to import unbundled). Not @sentry/node: it sets up a global OpenTelemetry
// tracer provider of its own beside Effect's tracer, and instruments ESM only through `--import` loader hooks, which
// cannot patch what esbuild bundled. The event itself is built here, from the defect alone: nothing of a request (its
// headers, cookies, query or body) is ever put in it, and every text in it is scrubbed (`scrub`).

/** Where a defect was met: each capture point names itself. */
export type Origin = "http" | "grpc" | "job" | "event" | "process"

/** A defect as a capture point hands it over. */
export interface Defect {
  readonly cause: Cause.Cause<unknown>
  readonly origin: Origin
  /**
   * What was being served: the HTTP route template, the gRPC method, the job, the consumer and event type, or how the
   * process failed. With the defect's type it is the event's fingerprint (what Sentry groups by and what is rate limited).
   */
  readonly route: string
  /** More tags (job, consumer, topic); scrubbed like every other text. */
  readonly tags?: Readonly<Record<string, string>>
  /** "fatal" for what ends the process; default "error". */
  readonly level?: "error" | "fatal"
}

/** The ids that tie a report to its request and trace (`capture` reads them from the fiber). */
export interface Ids {
  readonly requestId?: string | undefined
  readonly traceId?: string | undefined
  readonly spanId?: string | undefined
}

/** One stack frame, oldest first in its trace (Sentry's order). */
export interface Frame {
  readonly function?: string
  readonly filename: string
  readonly lineno: number
  readonly colno: number
  readonly in_app: boolean
}

/** One error of a defect's chain (its `cause`s), innermost first. */
export interface ExceptionValue {
  readonly type: string
  readonly value: string
  readonly mechanism: { readonly type: string; readonly handled: boolean }
  readonly stacktrace?: { readonly frames: ReadonlyArray<Frame> }
}

/** A captured defect as it leaves the process (a Sentry event, scrubbed), and as `GET /_dev/errors` lists it. */
export interface ErrorEvent {
  readonly event_id: string
  /** Seconds since the epoch. */
  readonly timestamp: number
  readonly level: "error" | "fatal"
  readonly platform: "node"
  readonly server_name: string
  readonly release: string
  readonly environment: string
  readonly transaction: string
  readonly fingerprint: ReadonlyArray<string>
  /** service, origin, route, request_id, trace_id, span_id, and the capture point's own (job, consumer, ...). */
  readonly tags: Readonly<Record<string, string>>
  readonly contexts: { readonly trace?: { readonly trace_id: string; readonly span_id: string } }
  readonly exception: { readonly values: ReadonlyArray<ExceptionValue> }
}

/** The error bus of a function (provided by `FunctionApp` in every runtime). */
export interface ErrorBus {
  /** Reports a defect with the fiber's request id, trace id and span id. Never fails and never waits for the send. */
  capture(defect: Defect): Effect.Effect<void>
  /** `capture` outside a fiber, with the ids given (the gateway's hot path, process-level handlers). */
  captureNow(defect: Defect, ids: Ids): void
  /** The most recent reports, newest first (kept outside production only; otherwise none). */
  recent(limit?: number): ReadonlyArray<ErrorEvent>
  /** Waits for the reports in flight, at most `timeoutMs`; false when some were still unsent. */
  flush(timeoutMs: number): Promise<boolean>
}

/** Reports nothing: what a fiber outside any function sees (a bus or a job runner tested alone). */
const unreported: ErrorBus = {
  capture: () => Effect.void,
  captureNow: () => {},
  recent: () => [],
  flush: () => Promise.resolve(true),
}

/**
 * The function's error bus. A reference, so that the kernel parts which capture (the HTTP middleware, the gRPC server,
 * jobs, event consumers) need no new requirement: `FunctionApp` provides the real one under every part of a function;
 * without it (a part tested alone) defects are only logged, as each capture point also does.
 */
export const ErrorBus = Context.Reference<ErrorBus>("shared/ErrorBus", { defaultValue: () => unreported })

/** How a function's bus reports. */
export interface ErrorBusOptions {
  readonly service: string
  readonly release: string
  readonly environment: string
  /** Where events are sent; none: nowhere (they are still logged by their capture points). */
  readonly dsn: Option.Option<Redacted.Redacted<string>>
  /** The share of defects reported, 0 to 1. */
  readonly sampleRate: number
  /** At most this many events per fingerprint (defect type and route) in a minute; the rest are counted, not sent. */
  readonly perMinute: number
  /** Keep the most recent events in memory for `GET /_dev/errors` (development). */
  readonly keepRecent: boolean
  /** How long closing (shutdown) waits for the reports in flight. */
  readonly flushTimeoutMs: number
}

/** The path of the development listing, on every function and, merged, on the gateway. */
export const DEV_ERRORS_PATH = "/_dev/errors"

// How many events the development listing keeps, and how many fingerprints the rate limit remembers.
const RECENT = 100
const FINGERPRINTS = 1_000
// Requests to the endpoint in flight at once (the transport's buffer): more are dropped, counted, never queued.
const IN_FLIGHT = 64
// One request to the endpoint; a hung endpoint holds a report that long at most.
const REQUEST_TIMEOUT_MS = 5_000
const SDK = { name: "platform.error-bus", version: "1.0.0" }

const reported = Metric.counter("error_reports_total", {
  description: "Defects reported by the error bus, by origin",
  incremental: true,
})
const dropped = Metric.counter("error_reports_dropped_total", {
  description:
    "Defect reports not delivered, by reason: sampled_out, rate_limited (per fingerprint), queue_overflow, network_error, rejected (the endpoint's non-2xx), ratelimit_backoff (the endpoint's 429), failed",
  incremental: true,
})
const delivered = Metric.counter("error_reports_sent_total", {
  description: "Defect reports the endpoint accepted",
  incremental: true,
})

// ---- scrubbing ---------------------------------------------------------------------------------------------------

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const SCRUBBERS: ReadonlyArray<readonly [RegExp, string | ((match: string, ...groups: Array<string>) => string)]> = [
  // Credentials in a URL (postgres://user:secret@host).
  [/\/\/[^\s/?#@:]+:[^\s/?#@]+@/g, "//[redacted]@"],
  // A cookie header and everything after it on the line.
  [/\b(set-cookie|cookie)(["']?\s*[:=]\s*)[^\n]*/gi, "$1$2[redacted]"],
  // An Authorization scheme and its credentials.
  [/\b(Bearer|Basic|Digest)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 [redacted]"],
  // A JWT / JWS anywhere (its header is base64url JSON: `eyJ`).
  [/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, "[jwt]"],
  // key=value or "key": "value" of a secret-looking key (query strings, JSON, log text).
  [
    /\b(password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|id_token|api[_-]?key|authorization|session)(["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^\s"'&,;})\]]+)/gi,
    (_match, key: string, separator: string, value: string) =>
      `${key}${separator}${/^["']/.test(value) ? `${value[0]}[redacted]${value[0]}` : "[redacted]"}`,
  ],
  // Email addresses.
  [/[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g, "[email]"],
  // Long opaque tokens (refresh tokens, keys, signatures); ids shaped as UUIDs stay.
  [/[A-Za-z0-9_+/-]{32,}={0,2}/g, (match) => (UUID.test(match) ? match : "[token]")],
]

/**
 * A text as it may leave the process: emails, JWTs, bearer and basic credentials, cookies, secret-looking `key=value`
 * pairs, URL credentials and long opaque tokens replaced by placeholders.
 */
export const scrub = (text: string): string =>
  SCRUBBERS.reduce((out, [pattern, by]) => out.replace(pattern, by as never), text)

// ---- building an event -------------------------------------------------------------------------------------------

// `    at fn (file:line:col)`, `    at file:line:col`; frames without a position (`at async Promise.all (index 0)`) are
// left out.
const FRAME = /^\s*at (?:(.*?) \()?(.+?):(\d+):(\d+)\)?\s*$/

const fileOf = (location: string) => {
  const path = location.startsWith("file://") ? location.slice(7) : location
  if (!isAbsolute(path)) return path
  const local = relative(process.cwd(), path)
  return local.startsWith("..") ? path : local
}

/** The frames of a V8 stack, oldest first; at most the 50 nearest the throw. */
export const framesOf = (stack: string | undefined): Array<Frame> => {
  if (stack === undefined) return []
  const frames: Array<Frame> = []
  for (const line of stack.split("\n")) {
    const match = FRAME.exec(line)
    if (match === null) continue
    const [, fn, location = "", lineno = "0", colno = "0"] = match
    const filename = fileOf(location)
    frames.push({
      ...(fn === undefined || fn === "" ? {} : { function: fn }),
      filename,
      lineno: Number(lineno),
      colno: Number(colno),
      in_app: !filename.includes("node_modules") && !filename.startsWith("node:") && !filename.startsWith("internal/"),
    })
    if (frames.length === 50) break
  }
  return frames.reverse()
}

// The reason a report is about: a defect (Die) before a failure; none for an interruption alone.
const reasonOf = (cause: Cause.Cause<unknown>) =>
  cause.reasons.find((r) => r._tag === "Die") ?? cause.reasons.find((r) => r._tag === "Fail")

/** The type a defect is reported and fingerprinted by: an Effect error's tag, an Error's name, else its kind. */
export const typeOf = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    if ("_tag" in error && typeof error._tag === "string") return error._tag
    if (error instanceof Error) return error.name
    return error.constructor?.name ?? "Object"
  }
  return typeof error
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

// An error and its causes (at most five deep), innermost first, as Sentry's exception values.
const exceptionsOf = (error: Error, type: string, mechanism: ExceptionValue["mechanism"]): Array<ExceptionValue> => {
  const chain: Array<ExceptionValue> = []
  let current: unknown = error
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const frames = framesOf(current.stack)
    chain.unshift({
      type: depth === 0 ? type : typeOf(current),
      value: clip(scrub(current.message), 2_000),
      mechanism,
      ...(frames.length > 0 ? { stacktrace: { frames } } : {}),
    })
    current = current.cause
  }
  return chain
}

// ---- the endpoint --------------------------------------------------------------------------------------------------

interface Sink {
  send(event: ErrorEvent): void
  flush(timeoutMs: number): Promise<boolean>
}

/** Problems of a DSN, else undefined: `https://<public key>@<host>[:port][/path]/<project id>`. */
export const dsnProblem = (dsn: string): string | undefined => {
  let url: URL
  try {
    url = new URL(dsn)
  } catch {
    return "Expected a DSN URL (https://<key>@<host>/<project id>)"
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "Expected an http(s) DSN"
  if (url.username === "") return "Expected the DSN's public key before @"
  if (!/\/[^/]+$/.test(url.pathname)) return "Expected the DSN to end with its project id"
  return undefined
}

const sentrySink = (
  dsn: Redacted.Redacted<string>,
  outcomes: { readonly dropped: (reason: string, count: number) => void; readonly sent: () => void },
  warn: (reason: string, message: string) => void,
): Effect.Effect<Sink> =>
  Effect.promise(async () => {
    const sentry: typeof SentryCore = await import("@sentry/core")
    const components = sentry.makeDsn(Redacted.value(dsn))
    // Checked with the configuration (dsnProblem); a DSN Sentry still refuses stops the start.
    if (components === undefined) throw new Error("SENTRY_DSN is not a DSN Sentry accepts")
    const url = sentry.getEnvelopeEndpointWithUrlEncodedAuth(components, undefined, SDK)
    const transport = sentry.createTransport(
      { bufferSize: IN_FLIGHT, recordDroppedEvent: (reason, _category, count) => outcomes.dropped(reason, count ?? 1) },
      async ({ body }) => {
        const response = await fetch(url, {
          method: "POST",
          headers: { "content-type": "application/x-sentry-envelope" },
          body,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        })
        await response.arrayBuffer().catch(() => undefined)
        return {
          statusCode: response.status,
          headers: {
            "x-sentry-rate-limits": response.headers.get("x-sentry-rate-limits"),
            "retry-after": response.headers.get("retry-after"),
          },
        }
      },
    )
    return {
      send: (event) => {
        // The envelope takes a copy: @sentry/core adds its SDK details to the event it is given.
        const envelope = sentry.createEventEnvelope({ ...event } as SentryCore.Event, components, { sdk: SDK })
        transport.send(envelope).then(
          (response) => {
            // No status: held back by the endpoint's rate limit or a full buffer (counted as dropped already).
            if (response.statusCode === undefined) return
            if (response.statusCode >= 200 && response.statusCode < 300) return outcomes.sent()
            outcomes.dropped("rejected", 1)
            warn(`rejected ${response.statusCode}`, `the error endpoint answered ${response.statusCode}`)
          },
          (error: unknown) =>
            warn(
              "network",
              `the error endpoint could not be reached: ${error instanceof Error ? error.message : error}`,
            ),
        )
      },
      flush: (timeoutMs) => Promise.resolve(transport.flush(timeoutMs)),
    }
  })

// ---- the bus -----------------------------------------------------------------------------------------------------

// The buses alive in this process (one per function; several under `npm start`'s one process): what process-level
// failures are reported through and what a Lambda invocation flushes before it is frozen.
interface Live {
  readonly bus: ErrorBus
  readonly flushTimeoutMs: number
  readonly log: (effect: Effect.Effect<void>) => void
}
const live = new Set<Live>()

/** A function's error bus, alive while its scope is: on closing it waits for the reports in flight (`flushTimeoutMs`). */
export const make = (options: ErrorBusOptions) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    const log = (effect: Effect.Effect<void>) => void Effect.runForkWith(context)(effect)
    const count = (metric: Metric.Counter<number>, attributes: Record<string, string>, n = 1) =>
      Metric.withAttributes(metric, attributes).updateUnsafe(n, context)
    // A failing endpoint is said once a minute per reason, not per report.
    const warned = new Map<string, number>()
    const warn = (reason: string, message: string) => {
      const now = Date.now()
      if ((warned.get(reason) ?? 0) > now - 60_000) return
      warned.set(reason, now)
      log(Effect.logWarning(message, { reason }))
    }
    const sink = Option.isSome(options.dsn)
      ? yield* sentrySink(
          options.dsn.value,
          {
            dropped: (reason, n) => count(dropped, { reason }, n),
            sent: () => count(delivered, {}),
          },
          warn,
        )
      : undefined

    const recent: Array<ErrorEvent> = []
    // Per fingerprint, the minute it is counted in and how many it had.
    const windows = new Map<string, { start: number; count: number }>()
    const admit = (key: string, now: number) => {
      let window = windows.get(key)
      if (window === undefined || now - window.start >= 60_000) {
        windows.delete(key)
        if (windows.size >= FINGERPRINTS) windows.delete(windows.keys().next().value!)
        window = { start: now, count: 0 }
        windows.set(key, window)
      }
      window.count++
      return window.count <= options.perMinute
    }
    const server = hostname()

    const captureNow = (defect: Defect, ids: Ids) => {
      try {
        const reason = reasonOf(defect.cause)
        if (reason === undefined) return
        const original = reason._tag === "Die" ? reason.defect : reason.error
        const type = clip(typeOf(original), 200)
        const route = clip(defect.route, 200)
        if (options.sampleRate < 1 && Math.random() >= options.sampleRate)
          return count(dropped, { reason: "sampled_out" })
        const now = Date.now()
        if (!admit(`${type}\u0000${route}`, now)) return count(dropped, { reason: "rate_limited" })
        const [error] = Cause.prettyErrors(Cause.fromReasons([reason]))
        const level = defect.level ?? "error"
        const tags: Record<string, string> = { service: options.service, origin: defect.origin, route }
        if (ids.requestId) tags.request_id = ids.requestId
        if (ids.traceId && ids.spanId) {
          tags.trace_id = ids.traceId
          tags.span_id = ids.spanId
        }
        for (const [key, value] of Object.entries(defect.tags ?? {})) tags[clip(key, 32)] = clip(scrub(value), 200)
        const event: ErrorEvent = {
          event_id: crypto.randomUUID().replaceAll("-", ""),
          timestamp: now / 1000,
          level,
          platform: "node",
          server_name: server,
          release: options.release,
          environment: options.environment,
          transaction: route,
          fingerprint: [type, route],
          tags,
          contexts: ids.traceId && ids.spanId ? { trace: { trace_id: ids.traceId, span_id: ids.spanId } } : {},
          exception: {
            values: exceptionsOf(error ?? new Error(type), type, { type: `platform.${defect.origin}`, handled: false }),
          },
        }
        count(reported, { origin: defect.origin })
        if (options.keepRecent) {
          recent.unshift(event)
          if (recent.length > RECENT) recent.pop()
        }
        sink?.send(event)
      } catch (error) {
        // Reporting must never break what it reports on.
        count(dropped, { reason: "failed" })
        warn("failed", `a defect could not be reported: ${error instanceof Error ? error.message : String(error)}`)
      }
    }

    const bus: ErrorBus = {
      capture: (defect) =>
        Effect.withFiber((fiber) => {
          const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
          captureNow(defect, { requestId: fiber.getRef(RequestId), traceId: span?.traceId, spanId: span?.spanId })
          return Effect.void
        }),
      captureNow,
      recent: (limit = RECENT) => recent.slice(0, Math.max(0, limit)),
      flush: (timeoutMs) => sink?.flush(timeoutMs) ?? Promise.resolve(true),
    }
    const entry: Live = { bus, flushTimeoutMs: options.flushTimeoutMs, log }
    yield* Effect.acquireRelease(
      Effect.sync(() => live.add(entry)),
      () => Effect.sync(() => live.delete(entry)),
    )
    // Released before the entry above: the reports in flight go out while the bus is still known.
    yield* Effect.addFinalizer(() => Effect.promise(() => bus.flush(options.flushTimeoutMs)))
    return bus
  })

/** A function's error bus as a layer (see `make`). */
export const layer = (options: ErrorBusOptions): Layer.Layer<never> =>
  Layer.effect(ErrorBus, make(options)) as Layer.Layer<never>

// ---- configuration -------------------------------------------------------------------------------------------------

// Empty is unset: a deploy target passes an optional secret the operator has not set as "" (SST's placeholder).
const Dsn = Schema.String.check(Schema.makeFilter((dsn: string) => (dsn === "" ? true : (dsnProblem(dsn) ?? true))))

/** The error bus's keys, part of every function's configuration (`Config.base`). */
export const config = () => ({
  /** Where defects are reported (a Sentry or GlitchTip DSN); unset or empty: not sent. */
  sentryDsn: Config.schema(Dsn, "SENTRY_DSN").pipe(
    Config.withDefault(""),
    Config.map((dsn) => (dsn === "" ? Option.none() : Option.some(Redacted.make(dsn)))),
  ),
  /** The environment events are filed under; default NODE_ENV. */
  sentryEnvironment: Config.option(Config.String("SENTRY_ENVIRONMENT")),
  /** The release events are filed under; default `<function>@<manifest version>` (the image's tag). */
  sentryRelease: Config.option(Config.String("SENTRY_RELEASE")),
  /** The share of defects reported, 0 to 1. */
  sentrySampleRate: Config.schema(
    Schema.NumberFromString.check(
      Schema.isBetween({ minimum: 0, maximum: 1 }, { message: "Expected a number from 0 to 1" }),
    ),
    "SENTRY_SAMPLE_RATE",
  ).pipe(Config.withDefault(1)),
  /** At most this many reports of one fingerprint (defect type and route) a minute, per process. */
  errorReportsPerMinute: Config.schema(
    Schema.NumberFromString.check(
      Schema.isInt({ message: "Expected an integer" }),
      Schema.isBetween({ minimum: 1, maximum: 10_000 }, { message: "Expected an integer from 1 to 10000" }),
    ),
    "ERROR_REPORTS_PER_MINUTE",
  ).pipe(Config.withDefault(10)),
})

/** The error bus's keys as loaded. */
export type ErrorBusConfig = {
  readonly [K in keyof ReturnType<typeof config>]: Config.Success<ReturnType<typeof config>[K]>
}

/** What `fromConfig` reads from a function's validated configuration (`Config.base`). */
export interface FunctionErrorConfig extends ErrorBusConfig {
  readonly env: string
  readonly logLevel: Logging.LoggingOptions["level"]
  readonly logPretty: boolean
  readonly shutdownTimeoutMs: number
}

/**
 * A function's bus from its manifest and configuration: release `<name>@<version>` unless `SENTRY_RELEASE`, environment
 * NODE_ENV unless `SENTRY_ENVIRONMENT`, recent events kept outside production. It logs (a failing endpoint) through a
 * logger of its own: it is built under the function's other layers, which capture through it.
 */
export const fromConfig = (
  manifest: { readonly name: string; readonly version: string },
  config: FunctionErrorConfig,
): Layer.Layer<never> =>
  layer({
    service: manifest.name,
    release: Option.getOrElse(config.sentryRelease, () => `${manifest.name}@${manifest.version}`),
    environment: Option.getOrElse(config.sentryEnvironment, () => config.env),
    dsn: config.sentryDsn,
    sampleRate: config.sentrySampleRate,
    perMinute: config.errorReportsPerMinute,
    keepRecent: config.env !== "production",
    flushTimeoutMs: config.shutdownTimeoutMs,
  }).pipe(Layer.provide(Logging.layer({ service: manifest.name, level: config.logLevel, pretty: config.logPretty })))

// ---- development listing, process-level failures -------------------------------------------------------------------

/** `GET /_dev/errors`: this function's most recent reports, newest first (development: mounted outside production). */
export const devRoute = Layer.unwrap(
  Effect.map(Effect.service(ErrorBus), (bus) =>
    HttpRouter.add(
      "GET",
      DEV_ERRORS_PATH,
      Effect.sync(() => HttpServerResponse.jsonUnsafe({ items: bus.recent() })),
    ),
  ),
)

/**
 * Reports what ends the process (an uncaught exception, an unhandled rejection) once, through the first bus alive in
 * it, logged as fatal; resolves when every bus has sent what it holds (or its flush timeout passed) with the longest
 * flush timeout, which bounds the shutdown that follows. Without a bus the error goes to stderr.
 */
export const fatal = async (error: unknown, origin: "uncaughtException" | "unhandledRejection"): Promise<number> => {
  const buses = [...live]
  const [first] = buses
  if (first === undefined) {
    process.stderr.write(`${origin}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    return 0
  }
  const cause = Cause.die(error)
  first.log(Effect.logFatal(`${origin}: the process stops`, cause))
  first.bus.captureNow({ cause, origin: "process", route: origin, level: "fatal" }, {})
  await Promise.all(buses.map((entry) => entry.bus.flush(entry.flushTimeoutMs)))
  return Math.max(...buses.map((entry) => entry.flushTimeoutMs))
}

/** `SHUTDOWN_TIMEOUT_MS` when unset: how long a closing function waits for its work in flight. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000

/** The longest shutdown timeout of the functions alive in this process (`SHUTDOWN_TIMEOUT_MS`'s default before any). */
export const shutdownTimeoutMs = (): number =>
  live.size === 0 ? DEFAULT_SHUTDOWN_TIMEOUT_MS : Math.max(...[...live].map((entry) => entry.flushTimeoutMs))

/** Says that a shutdown was cut after `afterMs` (logged as fatal through the first bus alive, else on stderr). */
export const shutdownOverran = (afterMs: number): void => {
  const message = `the shutdown did not finish within ${afterMs} ms: the process stops`
  const [first] = live
  if (first === undefined) process.stderr.write(`${message}\n`)
  else first.log(Effect.logFatal(message))
}

/** Waits for the reports in flight of every bus in the process, at most `timeoutMs` (before a Lambda is frozen). */
export const flushAll = (timeoutMs: number): Promise<boolean> =>
  Promise.all([...live].map((entry) => entry.bus.flush(timeoutMs))).then((all) => all.every(Boolean))
