import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { jwksAddress } from "../../functions/auth/TokenVerification.ts"
import { manifests } from "../../functions/registry.ts"
import { grpcUrlKey, httpUrlKey, startOrder } from "../../shared/Module.ts"
import { freePort } from "../../shared/testing/ports.ts"
import { type SmtpCapture, startSmtpCapture } from "../../shared/testing/smtpCapture.ts"

const ROOT = join(import.meta.dirname, "..", "..")

/** One function running as its own process. */
export interface RunningFunction {
  readonly name: string
  readonly url: string
  readonly grpcPort: number
  readonly child: ChildProcess
  /** The last lines it printed (for failure messages). */
  output: string
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
  /** Stops one function (SIGTERM) and waits for it to exit. */
  kill(name: string): Promise<void>
  /** Starts a stopped function again on the same ports and waits until it is ready. */
  restart(name: string): Promise<void>
  stop(): Promise<void>
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

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
    const child = spawn(process.execPath, [join(ROOT, "functions", name, "main.ts")], {
      cwd: ROOT,
      env: Object.fromEntries(
        Object.entries({ ...base, HTTP_PORT: String(port.http), GRPC_PORT: String(port.grpc) }).filter(
          (entry): entry is [string, string] => entry[1] !== undefined,
        ),
      ),
      stdio: ["ignore", "pipe", "pipe"],
    })
    const running: RunningFunction = { name, url: httpUrl(name), grpcPort: port.grpc, child, output: "" }
    const keep = (chunk: Buffer) => {
      running.output = (running.output + chunk.toString()).slice(-8_000)
    }
    child.stdout?.on("data", keep)
    child.stderr?.on("data", keep)
    functions.set(name, running)
    return running
  }
  const ready = async (running: RunningFunction, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (running.child.exitCode !== null) throw new Error(`${running.name} exited:\n${running.output}`)
      const status = await fetch(`${running.url}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
        (r) => r.status,
        () => 0,
      )
      if (status === 200) return
      await sleep(100)
    }
    throw new Error(`${running.name} not ready after ${timeoutMs} ms:\n${running.output}`)
  }
  const exited = (running: RunningFunction) =>
    running.child.exitCode !== null || running.child.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => running.child.once("exit", () => resolve()))

  const stopAll = async () => {
    for (const running of [...functions.values()].reverse()) {
      if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill("SIGTERM")
    }
    await Promise.all(
      [...functions.values()].map((running) =>
        Promise.race([exited(running), sleep(15_000).then(() => running.child.kill("SIGKILL"))]),
      ),
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
    await stopAll()
    throw error
  }

  return {
    functions,
    url: httpUrl(edge),
    smtp,
    database,
    kill: async (name) => {
      const running = functions.get(name)
      if (!running) return
      running.child.kill("SIGTERM")
      await exited(running)
    },
    restart: async (name) => ready(launch(name)),
    stop: stopAll,
  }
}
