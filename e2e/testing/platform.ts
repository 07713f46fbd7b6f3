import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { jwksAddress } from "../../functions/auth/TokenVerification.ts"
import { manifests } from "../../functions/registry.ts"
import { type Child, spawnChild, stopAll, waitForHttp } from "../../scripts/lib/processes.ts"
import { grpcUrlKey, httpUrlKey, startOrder } from "../../shared/Module.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { type SmtpCapture, startSmtpCapture } from "../../shared/testing/smtpCapture.ts"

const ROOT = join(import.meta.dirname, "..", "..")

/** One function running as its own process. */
export interface RunningFunction {
  readonly name: string
  readonly url: string
  readonly grpcPort: number
  /** Its process (with the last lines it printed, for failure messages). */
  readonly child: Child
}

/** The whole platform as separate processes on the real servers, with an SMTP capture for its mail. */
export interface Platform {
  /** Each function by name. */
  readonly functions: ReadonlyMap<string, RunningFunction>
  /** The gateway's URL (the public entry). */
  readonly url: string
  readonly smtp: SmtpCapture
  /** The run's own database (dropped by `stop`). */
  readonly database: string
  /** Stops one function (SIGTERM, SIGKILL after 15 s) and waits for it to exit. */
  kill(name: string): Promise<void>
  /** Starts a stopped function again on the same ports and waits until it is ready. */
  restart(name: string): Promise<void>
  stop(): Promise<void>
}

/** The text of the newest mail to `email` the platform's SMTP server received, waiting up to 20 s for one. */
export const mailText = async (platform: Pick<Platform, "smtp">, email: string): Promise<string> => {
  const deadline = Date.now() + 20_000
  while (!platform.smtp.mails.some((m) => m.to.includes(email))) {
    if (Date.now() > deadline) throw new Error(`no mail to ${email}`)
    await new Promise((r) => setTimeout(r, 25))
  }
  return platform.smtp.mails.filter((m) => m.to.includes(email)).at(-1)!.text
}

/**
 * Starts every function that has a main.ts (the gateway last) as a child process, as in production: its own database
 * on the real Postgres (each function in its own schema there, the embedded bus reading their outboxes), the real
 * Redis, mail to a real SMTP server in the test, a random key-encryption key, and every address wired through the
 * environment. `env` adds to (or overrides) what every function gets.
 */
export const startPlatform = async (
  options: {
    readonly env?: Record<string, string>
    /**
     * How a function is started: its script and working directory (default: functions/<name>/main.ts from the
     * repository, as Node runs TypeScript; a bench may run the image's bundle instead).
     */
    readonly entry?: (name: string) => { readonly script: string; readonly cwd: string }
    /** Rewrites the run's database URL as the functions get it (a fault proxy in front of Postgres). */
    readonly databaseVia?: (url: string) => string
  } = {},
): Promise<Platform> => {
  const adminUrl = process.env.DATABASE_URL
  if (!adminUrl) throw new Error("DATABASE_URL is not set: run the tests through `npm test` (it starts the servers)")
  const database = `e2e_${randomBytes(5).toString("hex")}`
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${database}`)
  await admin.end()
  const databaseUrl = new URL(adminUrl)
  databaseUrl.pathname = `/${database}`

  const smtp = await startSmtpCapture()
  const runnable = startOrder(manifests.filter((m) => existsSync(join(ROOT, "functions", m.name, "main.ts"))))
  const ports = new Map<string, { http: number; grpc: number }>()
  for (const m of runnable) ports.set(m.name, { http: await freePort(), grpc: await freePort() })
  const httpUrl = (name: string) => `http://127.0.0.1:${ports.get(name)?.http}`
  // The public entry: the function marked edge (the gateway).
  const edge = runnable.find((m) => m.edge)?.name
  if (edge === undefined) throw new Error("no edge function in the registry")

  // Where each function finds the others: <NAME>_GRPC_URL for gRPC peers, <NAME>_URL for the gateway's upstreams.
  const addresses: Record<string, string> = {}
  for (const m of runnable) {
    addresses[grpcUrlKey(m.name)] = `127.0.0.1:${ports.get(m.name)?.grpc}`
    addresses[httpUrlKey(m.name)] = httpUrl(m.name)
  }
  const base: Record<string, string | undefined> = {
    ...process.env,
    ...addresses,
    NODE_OPTIONS: undefined,
    KAFKA_BROKERS: undefined,
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    LOG_PRETTY: "false",
    DATABASE_URL: options.databaseVia?.(databaseUrl.toString()) ?? databaseUrl.toString(),
    // The run's own keys in the shared Redis: another run's rate-limit counters (every test client is 127.0.0.1)
    // and revocations are not this one's.
    REDIS_KEY_PREFIX: `${database}:`,
    DB_SCHEMA: undefined,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    MAIL_FROM: "Platform <no-reply@example.com>",
    KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    [jwksAddress.key]: `${httpUrl(jwksAddress.dependency)}${jwksAddress.path}`,
    // The gateway runs on this host: services believe its X-Forwarded-For.
    TRUSTED_PROXIES: "127.0.0.1,::ffff:127.0.0.1,::1",
    ...options.env,
  }

  const functions = new Map<string, RunningFunction>()
  const launch = (name: string) => {
    const port = ports.get(name)!
    const entry = options.entry?.(name) ?? { script: join(ROOT, "functions", name, "main.ts"), cwd: ROOT }
    const child = spawnChild({
      name,
      args: [entry.script],
      cwd: entry.cwd,
      env: { ...base, HTTP_PORT: String(port.http), GRPC_PORT: String(port.grpc) },
    })
    const running: RunningFunction = { name, url: httpUrl(name), grpcPort: port.grpc, child }
    functions.set(name, running)
    return running
  }
  const ready = (running: RunningFunction) =>
    waitForHttp(`${running.url}/readyz`, { child: running.child, requestTimeoutMs: 2_000 })

  const stop = async () => {
    await stopAll(
      [...functions.values()].map((running) => running.child),
      15_000,
    )
    await smtp.close()
    const cleanup = new pg.Client({ connectionString: adminUrl })
    await cleanup.connect()
    await cleanup.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    await cleanup.end()
  }

  try {
    for (const m of runnable) await ready(launch(m.name))
  } catch (error) {
    await stop()
    throw error
  }

  return {
    functions,
    url: httpUrl(edge),
    smtp,
    database,
    kill: async (name) => {
      await functions.get(name)?.child.stop(15_000)
    },
    restart: async (name) => ready(launch(name)),
    stop,
  }
}
