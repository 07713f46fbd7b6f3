import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import { ConfigInvalid, loadDotEnv } from "./Config.ts"
import type { FunctionApp } from "./FunctionApp.ts"

/**
 * Runs a function's container (its `App.ts` `app`) until SIGTERM/SIGINT, then shuts down gracefully (stop accepting, drain,
 * close pools) and exits 0. Invalid configuration prints every problem and exits 1 before anything starts.
 * With PLATFORM_WARMUP=1 it starts nothing: the modules are loaded (filling NODE_COMPILE_CACHE) and the process ends.
 */
export const run = (app: FunctionApp): void => {
  if (process.env.PLATFORM_WARMUP === "1") return
  loadDotEnv()
  Layer.launch(Layer.unwrap(Effect.map(app.config, app.container))).pipe(
    Effect.catchIf(
      (error): error is ConfigInvalid => error instanceof ConfigInvalid,
      (error) =>
        Effect.sync(() => {
          process.stderr.write(`${app.manifest.name}: ${error.message}\n`)
          process.exit(1)
        }),
    ),
    NodeRuntime.runMain({ disableErrorReporting: false, teardown }),
  )
}

// SIGTERM/SIGINT interrupt the main fiber: a run ended only by that interruption is a clean shutdown (0, not 130).
const teardown: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
