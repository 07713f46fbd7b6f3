import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { ConfigInvalid, loadDotEnv } from "./Config.ts"

/**
 * Runs a function's composition root until SIGTERM/SIGINT, then shuts down gracefully (stop accepting, drain,
 * close pools). Invalid configuration prints every problem and exits 1 before anything starts.
 */
export const run = <E, R extends never>(service: string, app: Layer.Layer<never, E, R>): void => {
  loadDotEnv()
  Layer.launch(app).pipe(
    Effect.catchIf(
      (error): error is ConfigInvalid & E => error instanceof ConfigInvalid,
      (error) =>
        Effect.sync(() => {
          process.stderr.write(`${service}: ${error.message}\n`)
          process.exit(1)
        }),
    ),
    NodeRuntime.runMain({ disableErrorReporting: false }),
  )
}
