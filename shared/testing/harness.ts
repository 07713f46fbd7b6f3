import { randomBytes } from "node:crypto"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { HttpServer } from "effect/http"
import pg from "pg"
import type { DbOptions } from "../Db.ts"

/** Connection options for a fresh, uniquely named schema on the real test Postgres (DATABASE_URL). */
export const freshSchema = (prefix = "t"): DbOptions => {
  const url = process.env.DATABASE_URL
  if (!url) throw new Error("DATABASE_URL is not set: run the tests through `npm test` (it starts the servers)")
  return {
    url: Redacted.make(url),
    schema: `${prefix}_${randomBytes(5).toString("hex")}`,
    poolMax: 5,
    // A fixture's pool, not what a test measures: the suite runs several files at once on two cores, where the 1 s
    // production bounds timed out a burst's plain INSERT and its wait for a connection. Tests of the bounds set their own (shared/Db.test.ts).
    queryTimeoutMs: 10_000,
    connectTimeoutMs: 10_000,
    acquireTimeoutMs: 30_000,
  }
}

/** Runs one SQL statement on the test database outside any service (setup and tampering in tests). */
export const sql = async (text: string, params: Array<unknown> = []) => {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    return (await client.query(text, params)).rows
  } finally {
    await client.end()
  }
}

/** A running layer and its context; `close` runs its finalizers (graceful shutdown). */
export interface Running<A> {
  readonly context: Context.Context<A>
  close(): Promise<void>
}

/** Builds a layer for a test, outside Effect (plain vitest hooks). */
export const start = async <A, E>(layer: Layer.Layer<A, E, never>): Promise<Running<A>> => {
  const scope = Scope.makeUnsafe()
  const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
  return { context, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** The base URL of the HTTP server in a running layer (started on port 0). */
export const baseUrl = (running: Running<never> | Running<unknown>): string => {
  const server = Context.get(running.context as Context.Context<HttpServer.HttpServer>, HttpServer.HttpServer)
  const address = server.address
  if (address._tag === "UnixPathAddress") throw new Error("not a TCP server")
  return `http://127.0.0.1:${address.port}`
}

/** Polls `check` every 25 ms until it holds; resolves with how long that took (ms), rejects naming `what` after `timeoutMs`. */
export const eventually = async (what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<number> => {
  const started = Date.now()
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  return Date.now() - started
}
