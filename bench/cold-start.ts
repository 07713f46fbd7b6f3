// Cold start as a caller of a serverless-style function feels it: spawn → the first 200 of a real route (a signed-in
// GET with a valid access token where the function has one), every function run as its container image runs it,
// against a bare node:http server in the same run; and each process's idle RSS once it has answered.
//   node bench/cold-start.ts [--runs N] [--idle-ms MS] [--profile DIR] [name...]
//
// As the image (infra/Dockerfile): the files of `scripts/build.ts --image` (assemble), `node main.mjs` with no flags,
// NODE_ENV=production, and a compile cache warmed by a PLATFORM_WARMUP=1 start; each timed start gets a fresh copy of
// that warmed cache, as each container starts from the image's (what one start adds to it is not kept).
// What a function needs to answer is up before its timed spawn, so the figure is the function's own start: Postgres,
// Redis and Kafka from .env.test, and one instance of every other function (auth's JWKS, authz's permission answers,
// identity behind the gateway), started once from the same image files. The access token is a real one: a user
// registered and signed in through auth, and granted the admin role in authz (audit's route needs a permission).
import { randomBytes, randomUUID } from "node:crypto"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs, parseEnv } from "node:util"
import pg from "pg"
import { jwksAddress } from "../functions/auth/TokenVerification.ts"
import { manifests } from "../functions/registry.ts"
import { assemble, build, discover, ROOT } from "../scripts/build.ts"
import { type Child, spawnChild, stopAll, waitForHttp } from "../scripts/lib/processes.ts"
import { type ModuleManifest, peerAddresses, startOrder } from "../shared/Module.ts"
import { freePort } from "../shared/testing/ports.ts"
import { productionEnv } from "../shared/testing/productionEnv.ts"
import { startSmtpCapture } from "../shared/testing/smtpCapture.ts"
import { httpGet, mib, quantile, type RouteCase, type RouteResult, runRoutes, textTable } from "./lib.ts"

const MAX_TIME_RATIO = 2
const MAX_RSS_RATIO = 2

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runs: { type: "string", default: process.env.BENCH_RUNS ?? "8" },
    "idle-ms": { type: "string", default: "2000" },
    /** Writes a V8 CPU profile of every timed function start (spawn to SIGTERM after its answer) into this folder. */
    profile: { type: "string" },
  },
  allowPositionals: true,
})
const runs = Math.max(1, Number(values.runs))
const idleMs = Math.max(0, Number(values["idle-ms"]))
const all = discover()
const names = positionals.length > 0 ? positionals : all

// The real route each function is timed to: a signed-in GET where it has one, else its cheapest real route. The
// gateway is timed twice: forwarding a signed-in GET to identity (what its callers feel), and a page of its own.
interface Timed {
  readonly fn: string
  readonly label: string
  readonly path: string
  readonly signedIn: boolean
  readonly note: string
}
const ROUTES: ReadonlyArray<Timed> = [
  {
    fn: "audit",
    label: "audit",
    path: "/api/v1/audit/events?limit=1",
    signedIn: true,
    note: "GET /api/v1/audit/events (signed in, admin)",
  },
  {
    fn: "auth",
    label: "auth",
    path: "/.well-known/jwks.json",
    signedIn: false,
    note: "GET /.well-known/jwks.json (auth has no signed-in GET)",
  },
  {
    fn: "authz",
    label: "authz",
    path: "/api/v1/users/me/permissions",
    signedIn: true,
    note: "GET /api/v1/users/me/permissions (signed in)",
  },
  {
    fn: "gateway",
    label: "gateway",
    path: "/api/v1/users/me",
    signedIn: true,
    note: "GET /api/v1/users/me (signed in, forwarded to identity)",
  },
  {
    fn: "gateway",
    label: "gateway (own page)",
    path: "/verify-email",
    signedIn: false,
    note: "GET /verify-email (a page the gateway serves itself)",
  },
  {
    fn: "identity",
    label: "identity",
    path: "/api/v1/users/me",
    signedIn: true,
    note: "GET /api/v1/users/me (signed in)",
  },
]
for (const name of names)
  if (!ROUTES.some((r) => r.fn === name)) throw new Error(`no route to time for ${name}: add it to ROUTES`)
const timed = ROUTES.filter((r) => names.includes(r.fn))

// The test servers' addresses (.env.test, written by infra/up.sh), the environment first.
const testServers = (): Record<string, string> => {
  const file = join(ROOT, ".env.test")
  const fromFile = existsSync(file) ? (parseEnv(readFileSync(file, "utf8")) as Record<string, string>) : {}
  const keys = ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS", "S3_ENDPOINT", "S3_REGION", "S3_BUCKET", "AWS_REGION"]
  const env = Object.fromEntries(
    [...keys, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"].flatMap((k) => {
      const v = process.env[k] ?? fromFile[k]
      return v === undefined ? [] : [[k, v]]
    }),
  )
  for (const k of ["DATABASE_URL", "REDIS_URL", "KAFKA_BROKERS"]) {
    if (!env[k]) {
      process.stderr.write(`bench: ${k} is not set: run \`bash infra/up.sh\` (writes .env.test) first\n`)
      process.exit(1)
    }
  }
  return env
}
const servers = testServers()

// Every function in a schema of the bench's own, made by its dependency instance and shared by its timed starts (a
// timed start is one more instance of a running function: its migrations are applied, auth's keys exist).
const schemaOf = (name: string) => `bench_cold_${name.replaceAll("-", "_")}`
const dropSchemas = async () => {
  const client = new pg.Client({ connectionString: servers.DATABASE_URL })
  await client.connect()
  try {
    for (const name of all) await client.query(`DROP SCHEMA IF EXISTS ${schemaOf(name)} CASCADE`)
  } finally {
    await client.end()
  }
}

const node = process.execPath
const work = mkdtempSync(join(tmpdir(), "bench-cold-"))
const children: Array<Child> = []
const smtp = await startSmtpCapture()
const keyEncryptionKey = randomBytes(32).toString("base64")

// Where each function's dependency instance listens; the timed starts get free ports of their own.
const ports = new Map<string, { http: number; grpc?: number }>()
for (const m of manifests)
  ports.set(m.name, { http: await freePort(), ...(m.ports.grpc ? { grpc: await freePort() } : {}) })
const moved: Array<ModuleManifest> = manifests.map((m) => ({ ...m, ports: ports.get(m.name)! }))

// What a deploy gives a function in production (as infra/image.test.ts), with the dependency instances' addresses.
const productionSettings = (name: string): Record<string, string> => {
  const m = moved.find((x) => x.name === name)!
  const peers = Object.fromEntries(
    peerAddresses(m, moved, [jwksAddress]).map((a) => [
      a.key,
      a.http ? `http://127.0.0.1:${a.port}${a.path}` : `127.0.0.1:${a.port}`,
    ]),
  )
  return {
    PATH: process.env.PATH ?? "",
    ...servers,
    ...productionEnv(
      name,
      manifests.map((x) => x.name),
    ),
    ...peers,
    DB_SCHEMA: schemaOf(name),
    KEY_ENCRYPTION_KEY: keyEncryptionKey,
    SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
    APP_BASE_URL: "https://platform.example.com",
    TRUSTED_PROXIES: "10.0.0.0/8",
  }
}

const imageDir = (name: string) => join(work, "images", name)
const cacheOf = (name: string) => join(imageDir(name), ".cache")

let results: Array<RouteResult> = []
try {
  await dropSchemas()
  // The image's files of every function (the dependency instances run from them too), and its warmed compile cache.
  console.log(`building and assembling ${all.length} images' files in ${work} …`)
  const reports = await build(all, { outdir: join(work, "dist") })
  for (const report of reports) {
    await assemble(report, "main", imageDir(report.name))
    mkdirSync(cacheOf(report.name))
    const warm = spawnChild({
      name: `${report.name} warm-up`,
      args: [join(imageDir(report.name), "main.mjs")],
      cwd: imageDir(report.name),
      env: {
        PATH: process.env.PATH,
        NODE_ENV: "production",
        NODE_COMPILE_CACHE: cacheOf(report.name),
        PLATFORM_WARMUP: "1",
      },
    })
    const exit = await warm.exited
    if (exit.code !== 0) throw new Error(`${report.name}: warm-up exited ${exit.code}: ${warm.output()}`)
  }

  // One instance of every function but the gateway, dependencies first, each ready before the next starts.
  const dependencies = startOrder(manifests).filter((m) => !m.edge)
  for (const m of dependencies) {
    const port = ports.get(m.name)!
    const child = spawnChild({
      name: `${m.name} (dependency)`,
      args: [join(imageDir(m.name), "main.mjs")],
      cwd: imageDir(m.name),
      env: {
        ...productionSettings(m.name),
        NODE_COMPILE_CACHE: cacheOf(m.name),
        LOG_LEVEL: "warn",
        HTTP_PORT: String(port.http),
        ...(port.grpc ? { GRPC_PORT: String(port.grpc) } : {}),
      },
    })
    children.push(child)
    await waitForHttp(`http://127.0.0.1:${port.http}/readyz`, { child, timeoutMs: 60_000, intervalMs: 50 })
    console.log(`  dependency ${m.name} ready on :${port.http}`)
  }

  // A real signed-in user: registered and signed in through auth (which asks identity), made administrator in authz.
  const authUrl = `http://127.0.0.1:${ports.get("auth")!.http}`
  const email = `bench-${randomUUID()}@example.com`
  const password = randomBytes(18).toString("base64url")
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${authUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    })
    if (!response.ok) throw new Error(`POST ${path}: ${response.status} ${await response.text()}`)
    return (await response.json()) as Record<string, unknown>
  }
  const registered = await post("/api/v1/auth/register", { email, password, name: "Cold Start" })
  const userId = String(registered.id)
  const grant = new pg.Client({ connectionString: servers.DATABASE_URL })
  await grant.connect()
  await grant.query(
    `INSERT INTO ${schemaOf("authz")}.user_roles (user_id, role_id) VALUES ($1, '00000000-0000-4000-8000-00000000ad01')`,
    [userId],
  )
  await grant.end()
  // Access tokens live minutes: a fresh one every few minutes, asked for between timed starts.
  let token = { value: "", at: 0 }
  const signIn = async () => {
    const tokens = await post("/api/v1/auth/login", { email, password })
    token = { value: String(tokens.access_token), at: Date.now() }
  }
  await signIn()
  const bearer = () => ({ authorization: `Bearer ${token.value}` })

  // Every route answers 200 with this token from the dependency instances (the gateway's are checked by its warm-up).
  for (const route of timed.filter((r) => r.fn !== "gateway")) {
    const answer = await httpGet(`http://127.0.0.1:${ports.get(route.fn)!.http}${route.path}`, {
      headers: route.signedIn ? bearer() : {},
    })
    if (answer.status !== 200) throw new Error(`${route.fn} ${route.note}: ${answer.text}`)
  }

  const baseline: RouteCase = {
    name: "bare node:http (baseline)",
    command: node,
    args: [join(ROOT, "bench/fixtures/bare-http.mjs")],
    env: () => ({ PATH: process.env.PATH }),
    url: "http://127.0.0.1:{port}/healthz",
    route: "GET /healthz",
    warmups: 1,
    baseline: true,
  }
  const floor: RouteCase = {
    ...baseline,
    name: "bare node:http, no ESM facade (floor)",
    args: [join(ROOT, "bench/fixtures/bare-http-builtin.mjs")],
    baseline: false,
  }
  const cases: Array<RouteCase> = [baseline, floor]
  const runCaches: Array<string> = []
  for (const route of timed) {
    const name = route.fn
    cases.push({
      name: route.label,
      command: node,
      args: [
        ...(values.profile === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", values.profile]),
        join(imageDir(name), "main.mjs"),
      ],
      cwd: imageDir(name),
      env: () => {
        // A container's start: the image's warmed cache, which nothing of an earlier start has added to.
        const cache = mkdtempSync(join(work, `cache-${name}-`))
        runCaches.push(cache)
        cpSync(cacheOf(name), cache, { recursive: true })
        return {
          ...productionSettings(name),
          NODE_COMPILE_CACHE: cache,
          // The bench's polls all come from 127.0.0.1 (and other benches share the Redis): the per-IP limit is
          // lifted so that it cannot answer 429 instead of the route; the limiter still runs on every request.
          ...(name === "gateway" ? { RATE_LIMIT_IP_PER_MINUTE: "100000000" } : {}),
        }
      },
      headers: () => (route.signedIn ? bearer() : {}),
      url: `http://127.0.0.1:{port}${route.path}`,
      route: route.note,
      warmups: 1,
    })
  }

  console.log(
    `\ncold start: ${cases.length} cases × ${runs} runs (interleaved), spawn → first 200 of the route; RSS ${idleMs} ms after it`,
  )
  const tty = process.stderr.isTTY
  results = await runRoutes(cases, runs, {
    idleMs,
    onProgress: async (round) => {
      if (tty) process.stderr.write(`\r  round ${round}/${runs}`)
      for (const dir of runCaches.splice(0)) rmSync(dir, { recursive: true, force: true })
      // Between rounds, outside any timed start: a token a few minutes old is renewed.
      if (Date.now() - token.at > 4 * 60_000) await signIn()
    },
  })
  if (tty) process.stderr.write("\n")
} finally {
  await stopAll(children)
  await smtp.close()
  rmSync(work, { recursive: true, force: true })
  await dropSchemas().catch((e: unknown) => console.error(`dropping the bench schemas: ${String(e)}`))
}

const median = (r: RouteResult, f: (s: RouteResult["samples"][number]) => number) =>
  quantile(
    r.samples.map(f).filter((v) => Number.isFinite(v)),
    0.5,
  )
const base = results.find((r) => r.case.baseline)!
const baseMs = median(base, (s) => s.ms)
const baseRss = median(base, (s) => s.rssIdle)
const rows = results.map((r) => {
  const ms = median(r, (s) => s.ms)
  const rss = median(r, (s) => s.rssIdle)
  const isFunction = !r.case.name.startsWith("bare ")
  return {
    name: r.case.name,
    route: r.case.route,
    runs: r.samples.length,
    failed: r.failures.length,
    medianMs: Number(ms.toFixed(1)),
    p90Ms: Number(
      quantile(
        r.samples.map((s) => s.ms),
        0.9,
      ).toFixed(1),
    ),
    minMs: Number(Math.min(...r.samples.map((s) => s.ms)).toFixed(1)),
    timeRatio: Number((ms / baseMs).toFixed(2)),
    rssAtAnswerMiB: Number(mib(median(r, (s) => s.rssAtAnswer))),
    rssIdleMiB: Number(mib(rss)),
    rssRatio: Number((rss / baseRss).toFixed(2)),
    timeMet: isFunction ? ms <= MAX_TIME_RATIO * baseMs : undefined,
    rssMet: isFunction ? rss <= MAX_RSS_RATIO * baseRss : undefined,
  }
})
const verdict = (met: boolean | undefined, label: string) =>
  met === undefined ? "" : `${label} ${met ? "ok" : "MISSED"}`
console.log("")
console.log(
  textTable(
    [
      "case",
      "n",
      "median ms",
      "p90 ms",
      "min ms",
      "× base",
      `time ≤ ${MAX_TIME_RATIO}×`,
      "RSS at 200",
      "RSS idle",
      "× base",
      `RSS ≤ ${MAX_RSS_RATIO}×`,
    ],
    rows.map((row) => [
      row.name,
      `${row.runs}${row.failed > 0 ? ` (${row.failed} failed)` : ""}`,
      row.medianMs.toFixed(1),
      row.p90Ms.toFixed(1),
      row.minMs.toFixed(1),
      row.timeRatio.toFixed(2),
      verdict(row.timeMet, ""),
      `${row.rssAtAnswerMiB.toFixed(1)} MiB`,
      `${row.rssIdleMiB.toFixed(1)} MiB`,
      row.rssRatio.toFixed(2),
      verdict(row.rssMet, ""),
    ]),
  ),
)
console.log("\nroutes:")
for (const r of results) console.log(`  ${r.case.name}: ${r.case.route}`)
for (const r of results) for (const f of r.failures.slice(0, 3)) console.log(`\n${r.case.name} failed: ${f}`)
console.log(
  JSON.stringify({
    bench: "cold-start",
    date: new Date().toISOString(),
    node: process.versions.node,
    runs,
    idleMs,
    targets: { timeRatio: MAX_TIME_RATIO, rssRatio: MAX_RSS_RATIO },
    baseline: { medianMs: Number(baseMs.toFixed(1)), rssIdleMiB: Number(mib(baseRss)) },
    cases: rows,
  }),
)
