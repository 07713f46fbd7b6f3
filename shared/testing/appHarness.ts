import { ConfigProvider, Effect, type Layer } from "effect"
import type { DefinedApp } from "../FunctionApp.ts"
import { type Running, start } from "./harness.ts"
import { freePort } from "./ports.ts"

/** A function's container started in-process as `main.ts` runs it, on free ports. */
export interface AppUnderTest<C = any, S = any> {
  readonly url: string
  /** Its gRPC address (`127.0.0.1:port`), when it serves gRPC. */
  readonly grpcAddress: string
  readonly config: C
  /** Its services, for tests that look behind the API. */
  readonly running: Running<S>
  close(): Promise<void>
}

/** How a test starts a function: extra environment, and stand-ins for services (see `DefinedApp.layer`). */
export interface StartOptions<C> {
  /** Environment over the test's (`undefined` removes a key, e.g. `KAFKA_BROKERS` for the embedded bus). */
  readonly env?: Record<string, string | undefined>
  readonly standIns?: (config: C) => Layer.Layer<any, any, any>
}

/**
 * Starts a function's `app` (its App.ts) as its container entry does (`Main.run`): configuration validated from the
 * test environment plus `env`, every server, background work. HTTP (and gRPC) listen on free ports.
 */
export const startApp = async <C>(app: DefinedApp<C>, options: StartOptions<C> = {}): Promise<AppUnderTest<C>> => {
  const httpPort = await freePort()
  const grpcPort = await freePort()
  const env = Object.entries({
    ...process.env,
    LOG_LEVEL: "warn",
    HTTP_PORT: String(httpPort),
    GRPC_PORT: String(grpcPort),
    ...options.env,
  }).flatMap(([key, value]) => (value === undefined ? [] : [[key, value] as const]))
  const provider = ConfigProvider.fromEnv({ env: Object.fromEntries(env) })
  const config = await Effect.runPromise(app.config.pipe(Effect.provide(ConfigProvider.layer(provider))))
  const running = (await start(app.layer(config, options.standIns?.(config)))) as Running<any>
  return {
    url: `http://127.0.0.1:${httpPort}`,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    config,
    running,
    close: running.close,
  }
}
