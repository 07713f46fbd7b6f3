import { Cause, Context, Effect, Layer, Logger, type LogLevel, References, Tracer } from "effect"
import pino from "pino"

/** Options for the process logger: which service is speaking, how much, and in which format. */
export interface LoggingOptions {
  readonly service: string
  readonly level: "trace" | "debug" | "info" | "warn" | "error" | "fatal"
  readonly pretty?: boolean
  /** Where lines go; defaults to stdout. Tests pass a stream to read the lines back. */
  readonly destination?: pino.DestinationStream
}

const pinoLevel: Record<LogLevel.LogLevel, pino.Level | undefined> = {
  All: "trace",
  Trace: "trace",
  Debug: "debug",
  Info: "info",
  Warn: "warn",
  Error: "error",
  Fatal: "fatal",
  None: undefined,
}

const effectLevel: Record<LoggingOptions["level"], LogLevel.LogLevel> = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error",
  fatal: "Fatal",
}

const SECRET_KEYS = [
  "password",
  "currentPassword",
  "newPassword",
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "secret",
  "client_secret",
  "authorization",
  "cookie",
  "set-cookie",
  "x-api-key",
]

// Secret-looking keys at the top level and up to three objects deep (headers, bodies, nested payloads).
const SECRET_PATHS = SECRET_KEYS.flatMap((key) => {
  const k = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`
  const at = (prefix: string) => (k.startsWith("[") ? `${prefix}${k}` : `${prefix}.${k}`)
  return [k, at("*"), at("*.*"), at("*.*.*")]
})

/** Creates the pino instance every line of a process goes through (JSON, ISO time, `service` on each line). */
export const makePino = (options: LoggingOptions): pino.Logger =>
  pino(
    {
      level: options.level,
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: SECRET_PATHS, censor: "[redacted]" },
    },
    options.destination ?? pino.destination({ sync: false }),
  )

/** An Effect logger that writes through pino with request_id/user_id annotations and the current trace ids. */
export const fromPino = (log: pino.Logger): Logger.Logger<unknown, void> =>
  Logger.make(({ message, logLevel, cause, fiber }) => {
    const level = pinoLevel[logLevel]
    if (level === undefined || !log.isLevelEnabled(level)) return
    const fields: Record<string, unknown> = { ...fiber.getRef(References.CurrentLogAnnotations) }
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span) {
      fields.trace_id = span.traceId
      fields.span_id = span.spanId
    }
    if (cause.reasons.length > 0) fields.err = Cause.pretty(cause)
    const parts = Array.isArray(message) ? message : [message]
    const text: Array<string> = []
    for (const part of parts) {
      if (typeof part === "string") text.push(part)
      else if (part !== null && typeof part === "object" && !(part instanceof Error)) Object.assign(fields, part)
      else text.push(String(part))
    }
    log[level](fields, text.join(" "))
  })

/** Replaces Effect's default logger with pino and sets the minimum level from config. */
export const layer = (options: LoggingOptions): Layer.Layer<never> =>
  Layer.unwrap(
    Effect.sync(() => {
      const log = options.pretty ? makePretty(options) : makePino(options)
      return Layer.mergeAll(
        Logger.layer([fromPino(log)]),
        Layer.succeed(References.MinimumLogLevel, effectLevel[options.level]),
      )
    }),
  )

// pino-pretty is a development dependency: loaded only when asked for, never bundled.
const makePretty = (options: LoggingOptions): pino.Logger => {
  try {
    const require = globalThis.process.getBuiltinModule("node:module").createRequire(import.meta.url)
    const pretty = require("pino-pretty") as (o: object) => pino.DestinationStream
    // The function's name leads each line: under npm start several functions may share one process and terminal.
    const destination = pretty({
      sync: true,
      colorize: true,
      messageFormat: "{service} › {msg}",
      ignore: "pid,hostname,service",
    })
    return makePino({ ...options, destination })
  } catch {
    return makePino(options)
  }
}

/** Adds request-scoped fields (request_id, user_id, ...) to every log line written by an effect. */
export const annotate = Effect.annotateLogs
