// Login flood: identity + auth as real processes on real Postgres, password logins at a fixed concurrency, against
// the argon2id cost measured in the same run, while /healthz of both is probed.
//   node bench/login-flood.ts [--seconds S] [--concurrency 2,4,8] [--users N] [--warmup S] [--threadpool N]
//     [--profile DIR]
import { randomBytes } from "node:crypto"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { Agent, request } from "node:http"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { parseArgs, parseEnv } from "node:util"
import { hash, verify } from "@node-rs/argon2"
import pg from "pg"
import { jwksAddress } from "../functions/auth/TokenVerification.ts"
import { OWASP_MINIMUM } from "../functions/identity/Passwords.ts"
import { type Child, describeExit, spawnChild, stopAll, waitForHttp } from "../scripts/lib/processes.ts"
import { freePort } from "../shared/testing/ports.ts"
import { quantile, textTable } from "./lib.ts"

const ROOT = join(import.meta.dirname, "..")
const RATIO_TARGET = 0.8
const HEALTH_TARGET = 2

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: "string", default: "15" },
    warmup: { type: "string", default: "3" },
    concurrency: { type: "string" },
    users: { type: "string" },
    "idle-probes": { type: "string", default: "500" },
    "probe-interval": { type: "string", default: "20" },
    "hash-samples": { type: "string", default: "20" },
    /** UV_THREADPOOL_SIZE for identity (unset: libuv's default, 4). */
    threadpool: { type: "string" },
    /** Writes a V8 CPU profile of identity and of auth (whole run, written as each exits) into this folder. */
    profile: { type: "string" },
  },
})
const cores = availableParallelism()
const seconds = Number(values.seconds)
const warmupSeconds = Number(values.warmup)
const levels = (values.concurrency ?? `${cores},${2 * cores},${4 * cores}`)
  .split(",")
  .map((c) => Math.max(1, Number(c)))
  .filter(Number.isFinite)
const userCount = Number(values.users ?? Math.max(...levels))
const idleProbes = Number(values["idle-probes"])
const probeIntervalMs = Number(values["probe-interval"])
const hashSamples = Number(values["hash-samples"])

// DATABASE_URL from the environment first, then from .env.test (written by infra/up.sh). Nothing else is taken from
// .env.test: no KAFKA_BROKERS (embedded Postgres bus), no REDIS_URL (in-process throttle cache).
const databaseUrl = (() => {
  const file = join(ROOT, ".env.test")
  const fromFile = existsSync(file) ? (parseEnv(readFileSync(file, "utf8")) as Record<string, string>) : {}
  const url = process.env.DATABASE_URL ?? fromFile.DATABASE_URL
  if (!url) {
    process.stderr.write("bench: set DATABASE_URL or run `bash infra/up.sh` (writes .env.test) first\n")
    process.exit(1)
  }
  return url
})()

// ---------------------------------------------------------------------------------------------------------------
// HTTP

interface Answer {
  readonly status: number
  readonly ms: number
  readonly body: string
}

/** One request; status 0 when nothing answered (connection error, timeout). Never throws. */
const call = (
  url: string,
  options: { method?: string; body?: unknown; agent?: Agent | false; timeoutMs?: number } = {},
): Promise<Answer> =>
  new Promise((resolve) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
    const started = performance.now()
    const done = (status: number, body: string) => resolve({ status, ms: performance.now() - started, body })
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        agent: options.agent ?? false,
        timeout: options.timeoutMs ?? 30_000,
        headers: payload === undefined ? {} : { "content-type": "application/json", "content-length": payload.length },
      },
      (res) => {
        let body = ""
        res.setEncoding("utf8")
        res.on("data", (chunk: string) => {
          if (body.length < 2_000) body += chunk
        })
        res.on("end", () => done(res.statusCode ?? 0, body))
        res.on("error", () => done(0, body))
      },
    )
    req.on("timeout", () => req.destroy(new Error("timeout")))
    req.on("error", (e) => done(0, e.message))
    req.end(payload)
  })

// ---------------------------------------------------------------------------------------------------------------
// Services

interface Service {
  readonly name: string
  readonly child: Child
  readonly httpUrl: string
}

const services: Array<Service> = []
const suffix = randomBytes(4).toString("hex")
const schemas = { identity: `bench_identity_${suffix}`, auth: `bench_auth_${suffix}` }

// The children get a clean environment: the bench's own DATABASE_URL only, no infrastructure from the caller's shell.
const inherited = (): Record<string, string | undefined> => {
  const env: Record<string, string | undefined> = { ...process.env }
  for (const key of ["KAFKA_BROKERS", "REDIS_URL", "NODE_OPTIONS", "NODE_COMPILE_CACHE", "UV_THREADPOOL_SIZE"]) {
    delete env[key]
  }
  return env
}

const start = (name: string, env: Record<string, string | undefined>, httpPort: number): Service => {
  const child = spawnChild({
    name,
    args: [
      ...(values.profile === undefined
        ? []
        : ["--cpu-prof", "--cpu-prof-dir", values.profile, "--cpu-prof-name", `${name}.cpuprofile`]),
      join(ROOT, "functions", name, "main.ts"),
    ],
    cwd: ROOT,
    env: { ...inherited(), ...env },
  })
  const service: Service = { name, child, httpUrl: `http://127.0.0.1:${httpPort}` }
  services.push(service)
  return service
}

const waitReady = (service: Service): Promise<void> =>
  waitForHttp(`${service.httpUrl}/readyz`, { child: service.child })

let cleaned = false
const cleanup = async (): Promise<void> => {
  if (cleaned) return
  cleaned = true
  await stopAll([...services.map((s) => s.child), ...(prober ? [prober] : [])])
  const client = new pg.Client({ connectionString: databaseUrl })
  try {
    await client.connect()
    for (const schema of Object.values(schemas)) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  } catch (e) {
    process.stderr.write(`bench: could not drop the bench schemas ${Object.values(schemas).join(", ")}: ${e}\n`)
  } finally {
    await client.end().catch(() => {})
  }
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping the services\n`)
    void cleanup().finally(() => process.exit(130))
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

/** CPU time (ms) of a process so far, from /proc (Linux); NaN elsewhere. */
const cpuMs = (pid: number | undefined): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 // utime + stime, in clock ticks of 1/100 s
  } catch {
    return Number.NaN
  }
}

/** CPU time (ms) of every process on the machine by pid, with a short name (Linux); empty elsewhere. */
const processesMs = (): Map<number, { name: string; ms: number }> => {
  const all = new Map<number, { name: string; ms: number }>()
  try {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue
      const pid = Number(entry)
      try {
        const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim()
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean)
        const script = cmdline.slice(1).find((arg) => !arg.startsWith("-"))
        all.set(pid, {
          name: comm === "postgres" ? comm : `${comm}${script ? ` ${script.slice(-60)}` : ""}`,
          ms: cpuMs(pid),
        })
      } catch {}
    }
  } catch {}
  return all
}

/** Busy and total CPU time (ms) of the whole machine, from /proc/stat. */
const machineMs = (): { busy: number; total: number } => {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? ""
    const ticks = line.split(/\s+/).slice(1, 9).map(Number)
    const total = ticks.reduce((a, b) => a + b, 0)
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0)
    return { busy: ((total - idle) * 1000) / 100, total: (total * 1000) / 100 }
  } catch {
    return { busy: Number.NaN, total: Number.NaN }
  }
}

interface CpuSnapshot {
  readonly identity: number
  readonly auth: number
  readonly bench: number
  readonly processes: Map<number, { name: string; ms: number }>
  readonly machine: { busy: number; total: number }
}
const cpuSnapshot = (identity: Service, auth: Service): CpuSnapshot => {
  const usage = process.cpuUsage()
  return {
    identity: cpuMs(identity.child.pid),
    auth: cpuMs(auth.child.pid),
    bench: (usage.user + usage.system) / 1000,
    processes: processesMs(),
    machine: machineMs(),
  }
}
/** CPU used between two snapshots, in % of one core. */
const cpuBetween = (a: CpuSnapshot, b: CpuSnapshot, wallMs: number) => {
  const pct = (ms: number) => (100 * ms) / wallMs
  const identity = pct(b.identity - a.identity)
  const auth = pct(b.auth - a.auth)
  const bench = pct(b.bench - a.bench)
  // Everything else that ran, by name: Postgres backends, and whatever else shares the machine.
  const others = new Map<string, number>()
  const own = new Set([process.pid, ...services.map((s) => s.child.pid)])
  for (const [pid, now] of b.processes) {
    if (own.has(pid)) continue
    const used = now.ms - (a.processes.get(pid)?.ms ?? 0)
    if (used > 0) others.set(now.name, (others.get(now.name) ?? 0) + used)
  }
  const postgres = pct(others.get("postgres") ?? 0)
  others.delete("postgres")
  const top = [...others].sort((x, y) => y[1] - x[1]).slice(0, 3)
  const busy = (cores * 100 * (b.machine.busy - a.machine.busy)) / (b.machine.total - a.machine.total)
  return {
    percent: { identity, auth, bench, postgres, rest: busy - identity - auth - bench - postgres, machine: busy },
    topRest: top.map(([name, ms]) => `${name} ${pct(ms).toFixed(0)}%`),
  }
}

/**
 * Probes the URLs' /healthz from a separate process (bench/healthz-probe.ts, raised priority) until `stop()`, or
 * until `count` probes each when count > 0; resolves the answers per URL.
 */
const startProbes = (urls: ReadonlyArray<string>, count = 0) => {
  const out: Array<string> = []
  const child = spawnChild({
    name: "the /healthz prober",
    args: [join(ROOT, "bench/healthz-probe.ts"), String(probeIntervalMs), String(count), ...urls],
    stdin: "pipe",
    onLine: (line, stream) => {
      if (stream === "stdout") out.push(line)
    },
  })
  prober = child
  const result = child.exited.then((exit) => {
    try {
      const parsed = JSON.parse(out.join("\n")) as { priority: string; samples: Array<Array<[number, number]>> }
      const answers = parsed.samples.map((list) => list.map(([status, ms]) => ({ status, ms, body: "" })))
      return { priority: parsed.priority, answers }
    } catch {
      throw new Error(`the /healthz prober exited (${describeExit(exit)}) without results:\n${child.output()}`)
    }
  })
  return {
    result,
    stop: () => {
      child.process.stdin?.end("stop\n")
      return result
    },
  }
}
let prober: Child | undefined

const summary = (answers: ReadonlyArray<Answer>) => {
  const ok = answers.filter((a) => a.status === 200).map((a) => a.ms)
  return {
    n: answers.length,
    failed: answers.length - ok.length,
    p50: quantile(ok, 0.5),
    p99: quantile(ok, 0.99),
    max: ok.length > 0 ? Math.max(...ok) : Number.NaN,
  }
}

const statusCounts = (answers: ReadonlyArray<Answer>): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const a of answers) if (a.status !== 200) counts[String(a.status)] = (counts[String(a.status)] ?? 0) + 1
  return counts
}

const firstFailure = (answers: ReadonlyArray<Answer>): string | undefined => {
  const bad = answers.find((a) => a.status !== 200)
  return bad === undefined ? undefined : `${bad.status} ${bad.body.slice(0, 300)}`
}

interface User {
  readonly email: string
  readonly password: string
}

/** `concurrency` workers posting logins back to back for `durationMs`, each cycling over the users. */
const flood = async (loginUrl: string, users: ReadonlyArray<User>, concurrency: number, durationMs: number) => {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const answers: Array<Answer> = []
  const started = performance.now()
  const deadline = started + durationMs
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = worker; performance.now() < deadline; i += concurrency) {
        const user = users[i % users.length]!
        answers.push(await call(loginUrl, { method: "POST", body: user, agent }))
      }
    }),
  )
  const elapsedMs = performance.now() - started
  agent.destroy()
  return { answers, elapsedMs }
}

// ---------------------------------------------------------------------------------------------------------------
// Run

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "-")

const table = textTable

const main = async () => {
  const [identityHttp, identityGrpc, authHttp, authGrpc] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ])
  const common = {
    DATABASE_URL: databaseUrl,
    // Not "production": that refuses development defaults (the embedded bus, the dev mailbox, dev service keys) this
    // bench relies on; the code paths it times are the same.
    NODE_ENV: "test",
    LOG_LEVEL: "warn",
    JWT_ISSUER: `http://127.0.0.1:${authHttp}`,
  }
  console.log(
    `login flood: ${cores} cores, Node ${process.version}, schemas ${schemas.identity} / ${schemas.auth}, ` +
      `identity UV_THREADPOOL_SIZE=${values.threadpool ?? "default (4)"}`,
  )
  const identity = start(
    "identity",
    {
      ...common,
      DB_SCHEMA: schemas.identity,
      HTTP_PORT: String(identityHttp),
      GRPC_PORT: String(identityGrpc),
      [jwksAddress.key]: `http://127.0.0.1:${authHttp}${jwksAddress.path}`,
      ...(values.threadpool === undefined ? {} : { UV_THREADPOOL_SIZE: values.threadpool }),
    },
    identityHttp,
  )
  const auth = start(
    "auth",
    {
      ...common,
      DB_SCHEMA: schemas.auth,
      HTTP_PORT: String(authHttp),
      GRPC_PORT: String(authGrpc),
      IDENTITY_GRPC_URL: `127.0.0.1:${identityGrpc}`,
      KEY_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
      LOGIN_IP_LIMIT_PER_MINUTE: "1000000000",
    },
    authHttp,
  )
  await Promise.all([waitReady(identity), waitReady(auth)])
  console.log(`ready: identity ${identity.httpUrl} (gRPC :${identityGrpc}), auth ${auth.httpUrl} (gRPC :${authGrpc})`)

  // Users, registered through auth (identity hashes each password once).
  const users: Array<User> = Array.from({ length: userCount }, (_, i) => ({
    email: `bench-${suffix}-${i}@example.com`,
    password: randomBytes(12).toString("base64url"),
  }))
  const registered = await Promise.all(
    users.map((u, i) =>
      call(`${auth.httpUrl}/api/v1/auth/register`, {
        method: "POST",
        body: { ...u, name: `Bench User ${i}` },
      }),
    ),
  )
  const refused = registered.filter((a) => a.status !== 201)
  if (refused[0] !== undefined) {
    throw new Error(
      `${refused.length}/${users.length} registrations failed; first: ${refused[0].status} ${refused[0].body}`,
    )
  }
  const loginUrl = `${auth.httpUrl}/api/v1/auth/login`
  const check = await call(loginUrl, { method: "POST", body: users[0] })
  if (check.status !== 200) throw new Error(`a login with the right password answered ${check.status}: ${check.body}`)
  console.log(`registered ${users.length} users; a login answers 200`)

  // argon2id at identity's cost, in this process: sequential verifications (one core), then `cores` at a time.
  const options = { memoryCost: OWASP_MINIMUM.memoryKib, timeCost: OWASP_MINIMUM.timeCost, parallelism: 1 } as const
  const stored = await hash("correct horse battery staple", options)
  await verify(stored, "correct horse battery staple")
  const hashTimes: Array<number> = []
  for (let i = 0; i < hashSamples; i++) {
    const t = performance.now()
    await verify(stored, "correct horse battery staple")
    hashTimes.push(performance.now() - t)
  }
  const hashMs = quantile(hashTimes, 0.5)
  const theoretical = (cores * 1000) / hashMs
  let parallelDone = 0
  const parallelStart = performance.now()
  await Promise.all(
    Array.from({ length: cores }, async () => {
      while (performance.now() - parallelStart < 3_000) {
        await verify(stored, "correct horse battery staple")
        parallelDone++
      }
    }),
  )
  const argonParallel = (parallelDone * 1000) / (performance.now() - parallelStart)
  console.log(
    `argon2id m=${OWASP_MINIMUM.memoryKib} KiB t=${OWASP_MINIMUM.timeCost} p=1: verify median ${fmt(hashMs)} ms ` +
      `(p90 ${fmt(quantile(hashTimes, 0.9))}) → theoretical ${fmt(theoretical)} logins/s on ${cores} cores; ` +
      `${cores} verifications at a time in this process: ${fmt(argonParallel)}/s`,
  )

  // Idle /healthz, both services probed side by side exactly as under load.
  const healthz = [`${identity.httpUrl}/healthz`, `${auth.httpUrl}/healthz`]
  const idleRun = await startProbes(healthz, idleProbes).result
  const [idleIdentity = [], idleAuth = []] = idleRun.answers
  const idle = { identity: summary(idleIdentity), auth: summary(idleAuth) }
  console.log(
    `idle /healthz (${idleProbes} each, every ${probeIntervalMs} ms, prober priority ${idleRun.priority}): identity p50 ${fmt(idle.identity.p50, 2)} ` +
      `p99 ${fmt(idle.identity.p99, 2)} ms; auth p50 ${fmt(idle.auth.p50, 2)} p99 ${fmt(idle.auth.p99, 2)} ms`,
  )

  // The floods, one per concurrency level, each after a warm-up that is not counted.
  const results = []
  for (const concurrency of levels) {
    if (warmupSeconds > 0) await flood(loginUrl, users, concurrency, warmupSeconds * 1000)
    const lag = monitorEventLoopDelay({ resolution: 10 })
    lag.enable()
    const before = cpuSnapshot(identity, auth)
    const probes = startProbes(healthz)
    const { answers, elapsedMs } = await flood(loginUrl, users, concurrency, seconds * 1000)
    const after = cpuSnapshot(identity, auth)
    const [loadedIdentity = [], loadedAuth = []] = (await probes.stop()).answers
    lag.disable()
    const cpu = cpuBetween(before, after, elapsedMs)
    const ok = answers.filter((a) => a.status === 200)
    const loginsPerSecond = (ok.length * 1000) / elapsedMs
    const perLogin = (percent: number) => (percent * 10) / loginsPerSecond // % of a core → CPU ms per second → per login
    const cpuMsPerLogin = {
      identity: perLogin(cpu.percent.identity),
      auth: perLogin(cpu.percent.auth),
      postgres: perLogin(cpu.percent.postgres),
      bench: perLogin(cpu.percent.bench),
    }
    const loaded = { identity: summary(loadedIdentity), auth: summary(loadedAuth) }
    const result = {
      concurrency,
      logins: answers.length,
      non200: answers.length - ok.length,
      non200ByStatus: statusCounts(answers),
      firstNon200: firstFailure(answers),
      loginsPerSecond,
      ratio: loginsPerSecond / theoretical,
      loginP50: quantile(
        ok.map((a) => a.ms),
        0.5,
      ),
      loginP99: quantile(
        ok.map((a) => a.ms),
        0.99,
      ),
      healthz: {
        identity: { ...loaded.identity, p99Ratio: loaded.identity.p99 / idle.identity.p99 },
        auth: { ...loaded.auth, p99Ratio: loaded.auth.p99 / idle.auth.p99 },
      },
      cpuPercent: cpu.percent,
      cpuMsPerLogin,
      /** Logins/s if the cores did nothing but this flow (identity + auth + Postgres + the load generator). */
      cpuCeiling:
        (cores * 1000) / (cpuMsPerLogin.identity + cpuMsPerLogin.auth + cpuMsPerLogin.postgres + cpuMsPerLogin.bench),
      topRest: cpu.topRest,
      benchEventLoopP99Ms: lag.percentile(99) / 1e6,
    }
    results.push(result)
    process.stderr.write(
      `  concurrency ${concurrency}: ${fmt(loginsPerSecond)} logins/s, ${result.non200} non-200, identity /healthz ` +
        `p99 ${fmt(loaded.identity.p99, 2)} ms\n`,
    )
  }

  // Report.
  const best = results.reduce((a, b) => (b.loginsPerSecond > a.loginsPerSecond ? b : a))
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED")
  console.log("")
  console.log(
    table(
      [
        "concurrency",
        "logins/s",
        "× theoretical",
        "login p50 ms",
        "login p99 ms",
        "non-200",
        "id /healthz p99",
        "× idle",
        "auth /healthz p99",
        "× idle",
        "cpu% id/auth/pg/bench/rest",
      ],
      results.map((r) => [
        `${r.concurrency}${r === best ? " (best)" : ""}`,
        fmt(r.loginsPerSecond),
        `${fmt(r.ratio, 2)} ${verdict(r.ratio >= RATIO_TARGET)}`,
        fmt(r.loginP50),
        fmt(r.loginP99),
        String(r.non200),
        `${fmt(r.healthz.identity.p99, 2)} ms`,
        `${fmt(r.healthz.identity.p99Ratio, 2)} ${verdict(r.healthz.identity.p99Ratio <= HEALTH_TARGET)}`,
        `${fmt(r.healthz.auth.p99, 2)} ms`,
        `${fmt(r.healthz.auth.p99Ratio, 2)} ${verdict(r.healthz.auth.p99Ratio <= HEALTH_TARGET)}`,
        [r.cpuPercent.identity, r.cpuPercent.auth, r.cpuPercent.postgres, r.cpuPercent.bench, r.cpuPercent.rest]
          .map((p) => fmt(p, 0))
          .join("/"),
      ]),
    ),
  )
  console.log(
    `\ntheoretical = ${cores} cores × 1000 / ${fmt(hashMs)} ms = ${fmt(theoretical)} logins/s (target ≥ ${RATIO_TARGET}×); ` +
      `/healthz p99 loaded/idle target ≤ ${HEALTH_TARGET}× (idle p99: identity ${fmt(idle.identity.p99, 2)} ms, ` +
      `auth ${fmt(idle.auth.p99, 2)} ms). cpu% is of one core (${cores * 100}% = all): identity, auth, ` +
      `every postgres process, this bench (the load generator; the prober is in "rest"), the rest of the machine.`,
  )
  console.log(
    `\nCPU per login (ms): the flow's own cost, and the logins/s the ${cores} cores would allow if they ran only it`,
  )
  console.log(
    table(
      [
        "concurrency",
        "identity",
        "auth",
        "postgres",
        "load gen",
        "total",
        "cpu ceiling/s",
        "× theoretical",
        "machine busy",
      ],
      results.map((r) => {
        const c = r.cpuMsPerLogin
        return [
          String(r.concurrency),
          fmt(c.identity),
          fmt(c.auth),
          fmt(c.postgres),
          fmt(c.bench),
          fmt(c.identity + c.auth + c.postgres + c.bench),
          fmt(r.cpuCeiling),
          fmt(r.cpuCeiling / theoretical, 2),
          `${fmt(r.cpuPercent.machine, 0)}%`,
        ]
      }),
    ),
  )
  const busiest = Math.max(...results.map((r) => r.cpuPercent.rest))
  if (busiest > 30) {
    console.log(
      `\nnote: other work used up to ${fmt(busiest, 0)}% of a core during the floods (beyond the prober's ~10–15%): ` +
        "the figures are pessimistic; rerun on a quiet machine.",
    )
  }
  for (const r of results) {
    if (r.topRest.length > 0) console.log(`concurrency ${r.concurrency}: "rest" was mostly ${r.topRest.join(", ")}`)
    if (r.non200 > 0)
      console.log(`concurrency ${r.concurrency}: non-200 ${JSON.stringify(r.non200ByStatus)}, first: ${r.firstNon200}`)
    for (const [name, h] of Object.entries(r.healthz)) {
      if (h.failed > 0) console.log(`concurrency ${r.concurrency}: ${h.failed} ${name} /healthz probes failed`)
    }
  }
  const round = (n: number) => (Number.isFinite(n) ? Math.round(n * 100) / 100 : null)
  const json = {
    bench: "login-flood",
    node: process.version,
    cores,
    seconds,
    users: users.length,
    identityThreadpool: values.threadpool === undefined ? 4 : Number(values.threadpool),
    hashMs: round(hashMs),
    theoreticalLoginsPerSecond: round(theoretical),
    argon2ParallelPerSecond: round(argonParallel),
    idleHealthz: {
      identity: { p50: round(idle.identity.p50), p99: round(idle.identity.p99) },
      auth: { p50: round(idle.auth.p50), p99: round(idle.auth.p99) },
    },
    best: best.concurrency,
    results: results.map((r) => ({
      concurrency: r.concurrency,
      logins: r.logins,
      non200: r.non200,
      non200ByStatus: r.non200ByStatus,
      loginsPerSecond: round(r.loginsPerSecond),
      ratio: round(r.ratio),
      loginP50: round(r.loginP50),
      loginP99: round(r.loginP99),
      healthzIdentityP99: round(r.healthz.identity.p99),
      healthzIdentityP99Ratio: round(r.healthz.identity.p99Ratio),
      healthzAuthP99: round(r.healthz.auth.p99),
      healthzAuthP99Ratio: round(r.healthz.auth.p99Ratio),
      cpuPercent: Object.fromEntries(Object.entries(r.cpuPercent).map(([k, v]) => [k, round(v)])),
      cpuMsPerLogin: Object.fromEntries(Object.entries(r.cpuMsPerLogin).map(([k, v]) => [k, round(v)])),
      cpuCeilingLoginsPerSecond: round(r.cpuCeiling),
      benchEventLoopP99Ms: round(r.benchEventLoopP99Ms),
      topRest: r.topRest,
    })),
  }
  console.log(JSON.stringify(json))
}

try {
  await main()
} catch (e) {
  process.stderr.write(`\nbench: ${e instanceof Error ? e.message : String(e)}\n`)
  process.exitCode = 1
} finally {
  await cleanup()
}
