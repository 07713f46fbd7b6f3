import { ConfigProvider, Effect } from "effect"
import type { FunctionApp } from "../FunctionApp.ts"
import { type Running, start } from "./harness.ts"
import { freePort } from "./ports.ts"

/** A function's container started in-process as `main.ts` runs it, on free ports. */
export interface AppUnderTest {
  readonly url: string
  readonly running: Running<never>
  close(): Promise<void>
}

/**
 * Starts a function's `app` (its App.ts) as its container entry does (`Main.run`): configuration validated from the
 * test environment plus `env`, every server, background work. HTTP (and gRPC) listen on free ports.
 */
export const startApp = async (app: FunctionApp, env: Record<string, string> = {}): Promise<AppUnderTest> => {
  const httpPort = await freePort()
  const provider = ConfigProvider.fromEnv({
    env: {
      ...(process.env as Record<string, string>),
      LOG_LEVEL: "warn",
      HTTP_PORT: String(httpPort),
      GRPC_PORT: String(await freePort()),
      ...env,
    },
  })
  const config = await Effect.runPromise(app.config.pipe(Effect.provide(ConfigProvider.layer(provider))))
  const running = (await start(app.container(config))) as Running<never>
  return { url: `http://127.0.0.1:${httpPort}`, running, close: running.close }
}
