// `npm start`: the whole platform on one machine, with embedded infrastructure for whatever is not configured
// (DATABASE_URL, REDIS_URL, KAFKA_BROKERS, S3_ENDPOINT, ...). By default every function runs in one platform process
// (scripts/together.ts: modules load once, memory is shared: a start of every function in seconds); with
// `--processes` (or START_PROCESSES=1) every function is its own process, as in production.
import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { jwksAddress } from "../functions/auth/TokenVerification.ts"
import { manifests as registry } from "../functions/registry.ts"
import { functionHeap, functionHeapOptions } from "../infra/deploy.ts"
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../infra/embedded/postgres.ts"
import { type ModuleManifest, peerAddresses, startOrder } from "../shared/Module.ts"
import { type Child, describeExit, spawnChild, stopAll, waitForHttp } from "./lib/processes.ts"

const started = performance.now()
const dataDir = process.env.DATA_DIR ?? ".data"
const colors = [36, 35, 33, 32, 34, 31, 96, 95]
// PORT_OFFSET moves every function's ports (manifest port + offset), e.g. to run a second platform beside the first.
const offset = Number(process.env.PORT_OFFSET ?? 0)
if (!Number.isInteger(offset) || offset < 0 || offset > 50_000)
  throw new Error("PORT_OFFSET must be an integer 0-50000")
const httpPort = (m: ModuleManifest) => m.ports.http + offset
const grpcPort = (m: ModuleManifest) => (m.ports.grpc === undefined ? undefined : m.ports.grpc + offset)
const say = (line: string) => process.stdout.write(`\x1b[1m[platform]\x1b[0m ${line}\n`)

// One process under supervision: a function (--processes) or the platform process holding them all.
interface Supervised {
  readonly name: string
  readonly args: ReadonlyArray<string>
  readonly env: NodeJS.ProcessEnv
  readonly label?: string
  child?: Child
  restarts: number
}

/** Node options with the caller's own after ours, so that theirs win. */
const withNodeOptions = (ours: string, theirs: string | undefined) => (theirs ? `${ours} ${theirs}` : ours)

const separate = process.argv.includes("--processes") || process.env.START_PROCESSES === "1"

let stopping = false
const supervised: Array<Supervised> = []

const launch = (s: Supervised) => {
  const child = spawnChild({
    name: s.name,
    args: s.args,
    env: s.env,
    ...(s.label === undefined ? {} : { label: s.label }),
  })
  s.child = child
  const startedAt = Date.now()
  void child.exited.then((exit) => {
    if (stopping) return
    // A function that ran for a minute starts over with a short delay; a crash loop backs off up to 30 s.
    if (Date.now() - startedAt > 60_000) s.restarts = 0
    const delay = Math.min(30_000, 1000 * 2 ** s.restarts++)
    say(`\x1b[31m${s.name} exited (${describeExit(exit)}); restarting in ${delay / 1000}s\x1b[0m`)
    setTimeout(() => !stopping && launch(s), delay)
  })
}

// Auth encrypts its signing keys with KEY_ENCRYPTION_KEY; locally a random one is made once and kept with the data
// (owner-only file), so keys survive restarts. Production must set its own (auth refuses to start without it).
const devKeyEncryptionKey = () => {
  const file = `${dataDir}/key-encryption-key`
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(file, randomBytes(32).toString("base64"), { mode: 0o600 })
  }
  return readFileSync(file, "utf8").trim()
}

const main = async () => {
  // Every function of the registry (each has a container entry, functions/<name>/main.ts); dependencies start first.
  const manifests = startOrder(registry)
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: process.env.NODE_ENV ?? "development" }
  env.LOG_PRETTY ??= process.stdout.isTTY ? "true" : "false"
  if (offset !== 0) {
    // Where the functions find each other (the gateway its upstreams, verifiers auth's keys) on the moved ports: the
    // addresses a deploy gives each function (peerAddresses), at this host.
    const moved = manifests.map((m) => ({ ...m, ports: { http: httpPort(m), grpc: grpcPort(m) } }))
    for (const m of moved) {
      for (const a of peerAddresses(m, moved, [jwksAddress])) {
        env[a.key] ??= a.http ? `http://127.0.0.1:${a.port}${a.path}` : `localhost:${a.port}`
      }
    }
    const edge = moved.find((m) => m.edge)
    if (edge !== undefined) env.APP_BASE_URL ??= `http://localhost:${edge.ports.http}`
  }
  // Node's compile cache with the data: every start after the first skips most of the TypeScript/JS compilation.
  env.NODE_COMPILE_CACHE ??= `${dataDir}/compile-cache`
  let postgres: EmbeddedPostgres | undefined
  if (!env.DATABASE_URL) {
    postgres = await startEmbeddedPostgres(`${dataDir}/pglite`, Number(env.EMBEDDED_PG_PORT ?? 54329))
    env.DATABASE_URL = postgres.url
    // PGlite runs one query at a time for every function: a query queues behind the others' (a migration, a burst),
    // so the 1 s bound meant for a dedicated server would refuse work that is merely waiting its turn.
    env.DB_QUERY_TIMEOUT_MS ??= "5000"
    env.DB_CONNECT_TIMEOUT_MS ??= "5000"
    say(`embedded Postgres (PGlite) on ${postgres.url}, data in ${dataDir}/pglite`)
  } else say("Postgres from DATABASE_URL")
  if (!env.KEY_ENCRYPTION_KEY) {
    if (env.NODE_ENV === "production") throw new Error("KEY_ENCRYPTION_KEY must be set in production")
    env.KEY_ENCRYPTION_KEY = devKeyEncryptionKey()
    say(`development KEY_ENCRYPTION_KEY from ${dataDir}/key-encryption-key`)
  }

  const shutdown = async (signal: string) => {
    if (stopping) return
    stopping = true
    say(`${signal}: stopping…`)
    // SIGTERM, then SIGKILL for a function that has not drained within the grace period.
    await stopAll(
      supervised.flatMap((s) => (s.child ? [s.child] : [])),
      15_000,
    )
    await postgres?.stop()
    say("stopped")
    process.exit(0)
  }
  process.on("SIGINT", () => void shutdown("SIGINT"))
  process.on("SIGTERM", () => void shutdown("SIGTERM"))

  const ready = (m: ModuleManifest) =>
    waitForHttp(`http://127.0.0.1:${httpPort(m)}/readyz`, { timeoutMs: 60_000, intervalMs: 50 }).then(
      () => true,
      () => false,
    )
  const readiness = new Map<string, Promise<boolean>>()
  if (separate) {
    // Dependencies first: a function starts once every function it depends on is ready.
    manifests.forEach((manifest, i) => {
      const s: Supervised = {
        restarts: 0,
        name: manifest.name,
        args: [`functions/${manifest.name}/main.ts`],
        env: {
          ...env,
          // The heap bounds each function has in its container (the operator's own NODE_OPTIONS after them wins).
          NODE_OPTIONS: withNodeOptions(functionHeapOptions, env.NODE_OPTIONS),
          HTTP_PORT: String(httpPort(manifest)),
          ...(manifest.ports.grpc ? { GRPC_PORT: String(grpcPort(manifest)) } : {}),
        },
        label: `\x1b[${colors[i % colors.length]}m${manifest.name.padEnd(10)}\x1b[0m│ `,
      }
      supervised.push(s)
      const up = Promise.all(manifest.dependsOn.map((dep) => readiness.get(dep))).then(() => {
        if (stopping) return false
        launch(s)
        // Not bound to this child: a function that crashes while starting is restarted and may still come up in time.
        return ready(manifest)
      })
      readiness.set(manifest.name, up)
    })
  } else {
    // One platform process with every function, each on its own ports; they come up together.
    const ports = Object.fromEntries(manifests.map((m) => [m.name, { http: httpPort(m), grpc: grpcPort(m) }]))
    const platform: Supervised = {
      name: "platform",
      args: ["scripts/together.ts"],
      env: {
        ...env,
        PLATFORM_PORTS: JSON.stringify(ports),
        // One heap for every function: the per-function old-space cap does not apply; the young generation's does.
        NODE_OPTIONS: withNodeOptions(`--max-semi-space-size=${functionHeap.maxSemiSpaceMiB}`, env.NODE_OPTIONS),
      },
      // Its lines say which function wrote them (the logger's `service`).
      label: "",
      restarts: 0,
    }
    supervised.push(platform)
    launch(platform)
    for (const manifest of manifests) readiness.set(manifest.name, ready(manifest))
  }
  for (const manifest of manifests) {
    const ok = await readiness.get(manifest.name)
    say(
      `${ok ? "\x1b[32mready\x1b[0m " : "\x1b[31mNOT READY\x1b[0m"} ${manifest.name.padEnd(10)} http://localhost:${httpPort(manifest)}`,
    )
  }
  say(`up in ${((performance.now() - started) / 1000).toFixed(1)}s — Ctrl-C stops everything`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
