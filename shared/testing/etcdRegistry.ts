// Helpers of the etcd service registry's tests: functions started as processes that register themselves in a
// run's own key prefix of the real etcd (infra/up.sh etcd), what an instance's /metrics says it served, and cleanup.
import { randomBytes } from "node:crypto"
import { join } from "node:path"
import { Etcd3 } from "etcd3"
import { type Child, spawnChild, waitForHttp } from "../../scripts/lib/processes.ts"
import { freePort } from "./ports.ts"

const ROOT = join(import.meta.dirname, "..", "..")

/** The real etcd's endpoints (`ETCD_ENDPOINTS` from .env.test); empty when it was not started. */
export const etcdEndpoints = (process.env.ETCD_ENDPOINTS ?? "").split(",").filter((e) => e.length > 0)

/** A run's own key prefix (`/test-<random>/`): runs side by side never see each other's instances. */
export const testPrefix = () => `/test-${randomBytes(4).toString("hex")}/`

/** A function's process, registered (once ready) in the run's prefix. */
export interface Registered {
  readonly child: Child
  readonly url: string
  readonly grpcPort: number
}

/**
 * Starts `functions/<name>/main.ts` with SERVICE_REGISTRY=etcd in `prefix` (TTL `ttlSeconds`, advertised at
 * 127.0.0.1) on free ports; resolves once it answers `ready` (`/readyz` by default).
 */
export const startRegistered = async (
  name: string,
  options: {
    readonly prefix: string
    readonly ttlSeconds: number
    readonly env?: Record<string, string | undefined>
    readonly ready?: "/readyz" | "/healthz"
  },
): Promise<Registered> => {
  const [http, grpc] = [await freePort(), await freePort()]
  const child = spawnChild({
    name,
    args: [join(ROOT, "functions", name, "main.ts")],
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_OPTIONS: undefined,
      KAFKA_BROKERS: undefined,
      NODE_ENV: "test",
      LOG_LEVEL: "warn",
      HTTP_PORT: String(http),
      GRPC_PORT: String(grpc),
      SERVICE_REGISTRY: "etcd",
      ETCD_ENDPOINTS: etcdEndpoints.join(","),
      SERVICE_REGISTRY_PREFIX: options.prefix,
      SERVICE_TTL_SECONDS: String(options.ttlSeconds),
      SERVICE_ADVERTISE_HOST: "127.0.0.1",
      ...options.env,
    },
  })
  const url = `http://127.0.0.1:${http}`
  await waitForHttp(`${url}${options.ready ?? "/readyz"}`, { child, requestTimeoutMs: 2_000 })
  return { child, url, grpcPort: grpc }
}

/** The sum of an instance's `/metrics` samples whose line matches `pattern` (what it served). */
export const servedCount = async (url: string, pattern: RegExp): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text()
  return text
    .split("\n")
    .filter((line) => pattern.test(line))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0)
}

/** Removes every key of the run's prefix. */
export const deletePrefix = async (prefix: string): Promise<void> => {
  const etcd = new Etcd3({ hosts: etcdEndpoints })
  try {
    await etcd.delete().prefix(prefix).exec()
  } finally {
    etcd.close()
  }
}

/** Polls `check` every 20 ms; resolves with how long it took to hold (ms), rejects naming `what` after `timeoutMs`. */
export const within = async (what: string, check: () => boolean, timeoutMs: number): Promise<number> => {
  const started = performance.now()
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`${what}: not after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return Math.round(performance.now() - started)
}
