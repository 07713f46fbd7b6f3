import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, ConfigProvider, Effect, Exit, Layer, Runtime } from "effect"
import { ConfigInvalid, loadDotEnv } from "./Config.ts"
import * as ErrorBus from "./ErrorBus.ts"
import type { FunctionApp } from "./FunctionApp.ts"

/**
 * Runs a function's container (its `App.ts` `app`) until SIGTERM/SIGINT, then shuts down gracefully (stop accepting, drain,
 * close pools) and exits 0. Invalid configuration prints every problem and exits 1 before anything starts.
 * With PLATFORM_WARMUP=1 it starts nothing: the modules are loaded (filling NODE_COMPILE_CACHE) and the process ends.
 */
export const run = (app: FunctionApp): void => {
  if (process.env.PLATFORM_WARMUP === "1") return
  loadDotEnv()
  launch(containerOf(app))
}

/** A function's container layer, its configuration read from the ambient environment. */
const containerOf = (app: FunctionApp): Layer.Layer<never, unknown, never> =>
  Layer.unwrap(Effect.map(app.config, app.container)).pipe(
    Layer.catchCause((cause) => {
      const error = Cause.findErrorOption(cause)
      if (error._tag === "None" || !(error.value instanceof ConfigInvalid))
        return Layer.effectDiscard(Effect.failCause(cause))
      const invalid = error.value
      return Layer.effectDiscard(
        Effect.sync(() => {
          process.stderr.write(`${app.manifest.name}: ${invalid.message}\n`)
          process.exit(1)
        }),
      )
    }),
  )

const launch = <E>(layer: Layer.Layer<never, E, never>) => {
  stopOnFatalErrors()
  cutOverrunningShutdowns()
  Layer.launch(layer).pipe(NodeRuntime.runMain({ disableErrorReporting: false, teardown }))
}

// Set once an uncaught exception or unhandled rejection has been met: the process then exits 1.
let failed = false

/**
 * An uncaught exception or an unhandled rejection is a defect nothing caught, and the process's state is no longer
 * known: it is reported first (`ErrorBus.fatal`: logged, sent, waited for), then the process shuts down as on SIGTERM
 * (stop accepting, drain, close pools) and exits 1, at the latest after twice the shutdown timeout. Node's default
 * would exit at once, losing the report and the requests in flight.
 */
const stopOnFatalErrors = () => {
  const stop = (origin: "uncaughtException" | "unhandledRejection") => (error: unknown) => {
    const first = !failed
    failed = true
    // Reporting never fails the stop (a rejection here would come back to this handler).
    void ErrorBus.fatal(error, origin)
      .catch(() => 0)
      .then((shutdownTimeoutMs) => {
        if (!first) return
        setTimeout(() => process.exit(1), 2 * shutdownTimeoutMs + 1_000).unref()
        process.emit("SIGTERM", "SIGTERM")
      })
  }
  process.on("uncaughtException", stop("uncaughtException"))
  process.on("unhandledRejection", stop("unhandledRejection"))
}

/**
 * SIGTERM/SIGINT start the shutdown (stop accepting, drain, close pools), each part bounded by the shutdown timeout;
 * one that still runs after twice that timeout (a client library whose close never settles) is cut there: logged as
 * fatal, exit 1. An orchestrator would otherwise kill the process later, without a word.
 */
const cutOverrunningShutdowns = () => {
  const arm = () => {
    const afterMs = 2 * ErrorBus.shutdownTimeoutMs() + 1_000
    setTimeout(() => {
      ErrorBus.shutdownOverran(afterMs)
      process.exit(1)
    }, afterMs).unref()
  }
  process.once("SIGTERM", arm)
  process.once("SIGINT", arm)
}

/**
 * Runs several functions' containers in one process (npm start's default: modules load once, memory is shared),
 * each with its own environment over this process's (its ports), each still serving and enforcing its own routes on
 * its own ports. A failure of one stops the process, as a container's would. Not how production runs: one container
 * per function there.
 */
export const runTogether = (
  apps: ReadonlyArray<{ readonly app: FunctionApp; readonly env: Readonly<Record<string, string>> }>,
): void => {
  loadDotEnv()
  // Each function is built fresh (its own memo map): a layer value two functions share (Notifier.layer,
  // Idempotency.layer, …) would otherwise be built once, against whichever function's database came first.
  const containers = apps.map(({ app, env }) =>
    Layer.fresh(containerOf(app)).pipe(
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { ...process.env, ...env } as never }))),
    ),
  )
  launch(containers.reduce((all, container) => Layer.merge(all, container), Layer.empty as Layer.Layer<never, unknown>))
}

// SIGTERM/SIGINT interrupt the main fiber: a run ended only by that interruption is a clean shutdown (0, not 130),
// unless it was a fatal error's shutdown (1).
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
    ? onExit(failed ? 1 : 0)
    : Runtime.defaultTeardown(exit, onExit)
