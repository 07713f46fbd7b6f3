// Gateway tax: the same authenticated GET (JWT verified, permission checked, rate limited) straight to the service,
// through the gateway, through a bare forwarder (bench/forwarder.ts: node:http + undici, no checks) and through nginx
// (a plain reverse proxy, when installed), in one run, in front of the same identity process. Prints each path's max
// rate, each proxy's CPU time per request (its own /proc counters over each round), the gateway against the
// forwarder, and the latency the gateway adds (one client; and at half the direct max rate, open loop).
// Targets (reported, never enforced): gateway rps ≥ 0.85 × forwarder rps, gateway CPU per request ≤ 1.3 × forwarder's;
// and, as before, gateway rps ≥ 0.5 × direct, added p99 ≤ 1 ms. The last line printed is one JSON object.
//   node bench/gateway.ts [--seconds 10] [--concurrency 16] [--rounds 3] [--warmup 5] [--nginx-workers 1]
//                         [--cpu-prof DIR]   (every function and the forwarder write a V8 CPU profile there; the
//                                             gateway's and the forwarder's top self-time functions are printed)
//                         [--header-probe]    (one more path: straight to identity with the headers the gateway adds,
//                                             traceparent, x-request-id and x-forwarded-*: what they cost identity)
//                         [--sources]         (the functions run from their TypeScript sources, as `npm start` and the
//                                             tests run them; by default from their images' files, scripts/build.ts
//                                             --image, as deployed: from the sources each function held 20-45 MiB more RSS;
//                                             with --cpu-prof, --sources names the source files in the profiles)
//                         [--node-options "FLAGS"] (Node options of the functions and the forwarder; by default the
//                                             heap bounds the image gives each function, infra/deploy.ts; "" for
//                                             V8's own sizing)
import { spawnSync } from "node:child_process"
import { randomUUID } from "node:crypto"
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { delimiter, join, resolve } from "node:path"
import { parseArgs, parseEnv } from "node:util"
import { Agent, request } from "undici"
import { startPlatform } from "../e2e/testing/platform.ts"
import { functionHeapOptions } from "../infra/deploy.ts"
import { assemble, build, discover } from "../scripts/build.ts"
import { type Child, spawnChild, waitForHttp } from "../scripts/lib/processes.ts"
import { freePort } from "../shared/testing/ports.ts"
import { childPids, measuredCommit, mib, processCpuMs, profileTop, rssBytes } from "./lib.ts"

const ROOT = join(import.meta.dirname, "..")
const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
    warmup: { type: "string", default: "5" },
    "nginx-workers": { type: "string", default: "1" },
    "cpu-prof": { type: "string" },
    "header-probe": { type: "boolean", default: false },
    "node-options": { type: "string", default: functionHeapOptions },
    sources: { type: "boolean", default: false },
  },
})
const seconds = Number(values.seconds)
const concurrency = Number(values.concurrency)
const rounds = Number(values.rounds)
const warmup = Number(values.warmup)
const nginxWorkers = Number(values["nginx-workers"])
const profileDir = values["cpu-prof"] === undefined ? undefined : resolve(values["cpu-prof"])
if (profileDir !== undefined) mkdirSync(profileDir, { recursive: true })
const profileFlags = profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`]
// What the functions and the forwarder run with: as deployed (the image's heap bounds) unless told otherwise.
const nodeOptions = [values["node-options"], ...profileFlags].filter((flag) => flag !== "").join(" ")

// Targets (reported, never enforced). Memory: each function's RSS at the end of the load ≤ 3 × the idle RSS of a bare
// node:http server (bench/fixtures/bare-http.mjs, the baseline of bench:cold-start) measured in the same run.
const TARGET = {
  gatewayToForwarderRps: 0.85,
  gatewayToForwarderCpu: 1.3,
  gatewayToDirectRps: 0.5,
  addedP99Ms: 1,
  rssToBareIdle: 3,
}
const NGINX_INSTALL = "apt-get update && apt-get install -y nginx-light"

// The real servers of `npm run infra:up` (.env.test), unless the environment names them.
if (!process.env.DATABASE_URL && existsSync(join(ROOT, ".env.test"))) {
  Object.assign(process.env, parseEnv(readFileSync(join(ROOT, ".env.test"), "utf8")))
}

// What is measured: the commit checked out, and whether the code the platform runs differs from it.
const measured = measuredCommit(["functions", "shared", "bench"])

// Every function bundled and laid out as its image holds it (what ships), run with `node main.mjs`; unless --sources.
const imagesDir = !values.sources ? mkdtempSync(join(tmpdir(), "bench-gateway-images-")) : undefined
if (imagesDir !== undefined) {
  for (const report of await build(discover(), { outdir: join(imagesDir, "build") })) {
    await assemble(report, "main", join(imagesDir, report.name))
  }
}

const adminEmail = `bench-admin-${randomUUID().slice(0, 8)}@example.com`
const platform = await startPlatform({
  env: {
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    // The bench is one client hammering one route: limits too high to reach, so every request is still counted
    // (per address and per user) without being refused.
    RATE_LIMIT_IP_PER_MINUTE: process.env.BENCH_IP_LIMIT ?? "100000000",
    RATE_LIMIT_USER_PER_MINUTE: process.env.BENCH_USER_LIMIT ?? "100000000",
    LOGIN_IP_LIMIT_PER_MINUTE: "100000000",
    ...(nodeOptions === "" ? {} : { NODE_OPTIONS: nodeOptions }),
  },
  ...(imagesDir === undefined
    ? {}
    : { entry: (name: string) => ({ script: join(imagesDir, name, "main.mjs"), cwd: join(imagesDir, name) }) }),
})
const identity = platform.functions.get("identity")!
const gatewayPid = platform.functions.get("gateway")!.child.pid!
const extra: Array<Child> = []
let nginxDir: string | undefined
let stopping: Promise<void> | undefined
const stop = () => {
  stopping ??= (async () => {
    await Promise.all(extra.map((child) => child.stop()))
    if (nginxDir !== undefined) rmSync(nginxDir, { recursive: true, force: true })
    await platform.stop()
    if (imagesDir !== undefined) rmSync(imagesDir, { recursive: true, force: true })
  })()
  return stopping
}
process.on("SIGINT", () => void stop().then(() => process.exit(130)))

/** The bare forwarder (bench/forwarder.ts) as its own process in front of identity. */
const startForwarder = async () => {
  const port = await freePort()
  const child = spawnChild({
    name: "forwarder",
    args: [join(import.meta.dirname, "forwarder.ts")],
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_OPTIONS: nodeOptions === "" ? undefined : nodeOptions,
      UPSTREAM_URL: identity.url,
      HTTP_PORT: String(port),
    },
  })
  extra.push(child)
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/healthz`, { child, timeoutMs: 15_000 })
  return { url, pids: () => [child.pid!] }
}

/**
 * The idle RSS of a bare node:http server (the same fixture bench:cold-start starts as its baseline): started, asked
 * once, left idle 2 s, read from /proc, stopped. Measured before the load, so that it is the idle figure on the same
 * machine and Node.
 */
const bareServerIdleRss = async () => {
  const port = await freePort()
  const child = spawnChild({
    name: "bare",
    args: [join(ROOT, "bench/fixtures/bare-http.mjs")],
    cwd: ROOT,
    env: { PATH: process.env.PATH, HTTP_PORT: String(port) },
  })
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, { child, timeoutMs: 15_000 })
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    return rssBytes(child.pid!)
  } finally {
    await child.stop()
  }
}

/** nginx's binary: $NGINX, on PATH, or where Debian puts it (/usr/sbin is not on every user's PATH). */
const findNginx = (): string | undefined => {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"]
  for (const candidate of [process.env.NGINX, ...dirs.filter(Boolean).map((dir) => join(dir, "nginx"))]) {
    if (candidate === undefined) continue
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // Not there.
    }
  }
  return undefined
}

/**
 * nginx as a plain reverse proxy in front of identity: a generated config in a temp dir (pid file, temp paths, lock
 * file there; no access log; errors to stderr), in the foreground (`daemon off`), master + `nginxWorkers` workers,
 * HTTP/1.1 keep-alive to the upstream. One worker by default: the gateway and the forwarder are one event loop each,
 * so one nginx worker is the like-for-like proxy (on two cores shared with identity, Postgres, Redis and the load
 * generator, a second worker would only take turns with the first). Keep-alive: the bench's clients keep their
 * connections (no per-connection request cap), and idle upstream connections are dropped after 4 s, before Node's
 * 5 s server timeout closes them under nginx.
 */
const startNginx = async (binary: string) => {
  const version = (spawnSync(binary, ["-v"], { encoding: "utf8" }).stderr ?? "").trim().replace(/^nginx version: /, "")
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), "bench-nginx-"))
  nginxDir = dir
  // Workers run as `nobody` when the master is root: they must reach the temp paths.
  chmodSync(dir, 0o755)
  const upstream = new URL(identity.url)
  const config = `daemon off;
master_process on;
worker_processes ${nginxWorkers};
pid ${dir}/nginx.pid;
lock_file ${dir}/nginx.lock;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  upstream identity {
    server ${upstream.host};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 4s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://identity;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }
  }
}
`
  const conf = join(dir, "nginx.conf")
  writeFileSync(conf, config)
  const child = spawnChild({ name: "nginx", command: binary, args: ["-p", dir, "-c", conf, "-e", "stderr"], cwd: dir })
  extra.push(child)
  const url = `http://127.0.0.1:${port}`
  await waitForHttp(`${url}/healthz`, { child, timeoutMs: 15_000 })
  const master = child.pid!
  // Master and workers: the workers do the proxying; the master's share is counted too (it is nginx's cost).
  return { url, version, pids: () => [master, ...childPids(master)] }
}

const agent = new Agent({ connections: concurrency * 2, pipelining: 1, keepAliveTimeout: 30_000 })
const call = async (url: string, token?: string, body?: unknown, extra?: Record<string, string>) => {
  const res = await request(url, {
    dispatcher: agent,
    method: body === undefined ? "GET" : "POST",
    headers: {
      ...extra,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
const median = (xs: ReadonlyArray<number>) =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  )
const cpuOf = (pids: ReadonlyArray<number>) => pids.reduce((sum, pid) => sum + processCpuMs(pid), 0)

/** One way to identity: its base URL and the processes in between (none for the direct path). */
interface Path {
  readonly name: "direct" | "gateway" | "forwarder" | "nginx" | "direct+headers"
  readonly base: string
  readonly proxy: (() => ReadonlyArray<number>) | undefined
  /** Headers sent besides the token (fresh per request). */
  readonly headers?: () => Record<string, string>
}

// What the gateway adds on its way to identity: a traceparent of its own span (a new trace when the client sent
// none), a request id, the forwarding headers.
const gatewayHeaders = () => ({
  traceparent: `00-${randomUUID().replaceAll("-", "")}-${randomUUID().replaceAll("-", "").slice(0, 16)}-01`,
  "x-request-id": randomUUID(),
  "x-forwarded-for": "127.0.0.1",
  "x-forwarded-proto": "http",
  "x-forwarded-host": "127.0.0.1",
})

/** One max-rate round of one path: rps, requests answered, and CPU ms per request of the proxy and of identity. */
interface Round {
  readonly rps: number
  readonly requests: number
  readonly failed: number
  readonly proxyCpuPerRequest: number
  readonly identityCpuPerRequest: number
}

try {
  // An administrator (the bootstrap account) with a token: the request carries a real JWT and needs a permission.
  const password = "correct horse battery"
  const registered = await call(`${platform.url}/api/v1/auth/register`, undefined, {
    email: adminEmail,
    password,
    name: "Bench",
  })
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${JSON.stringify(registered.body)}`)
  const userId = registered.body.id as string
  while (!platform.smtp.mails.some((m) => m.to.includes(adminEmail))) await sleep(50)
  const mail = platform.smtp.mails.find((m) => m.to.includes(adminEmail))!
  const verifyToken = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail.text)?.[1]
  await call(`${platform.url}/api/v1/auth/verify-email`, undefined, { token: verifyToken })
  const login = await call(`${platform.url}/api/v1/auth/login`, undefined, { email: adminEmail, password })
  const token = login.body.access_token as string
  const path = `/api/v1/users/${userId}`

  const bareIdleRss = await bareServerIdleRss()
  const forwarder = await startForwarder()
  const nginxBinary = findNginx()
  let nginx: Awaited<ReturnType<typeof startNginx>> | undefined
  let nginxSkipped: string | undefined
  if (nginxBinary === undefined) nginxSkipped = `nginx is not installed (${NGINX_INSTALL})`
  else {
    nginx = await startNginx(nginxBinary).catch((error: unknown) => {
      nginxSkipped = `nginx did not start: ${error instanceof Error ? error.message : String(error)}`
      return undefined
    })
  }
  const paths: Array<Path> = [
    { name: "direct", base: identity.url, proxy: undefined },
    { name: "gateway", base: platform.url, proxy: () => [gatewayPid] },
    { name: "forwarder", base: forwarder.url, proxy: forwarder.pids },
    ...(nginx === undefined ? [] : [{ name: "nginx" as const, base: nginx.url, proxy: nginx.pids }]),
    ...(values["header-probe"]
      ? [{ name: "direct+headers" as const, base: identity.url, proxy: undefined, headers: gatewayHeaders }]
      : []),
  ]
  for (const p of paths) while ((await call(`${p.base}${path}`, token)).status !== 200) await sleep(100)

  // Closed loop: as fast as `concurrency` clients go; CPU of the proxy and of identity from their /proc counters.
  const maxRate = async (p: Path, forSeconds = seconds): Promise<Round> => {
    const url = `${p.base}${path}`
    let done = 0
    let failed = 0
    const proxyPids = p.proxy?.() ?? []
    const cpuBefore = { proxy: cpuOf(proxyPids), identity: processCpuMs(identity.child.pid!) }
    const started = performance.now()
    const end = started + forSeconds * 1000
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const res = await call(url, token, undefined, p.headers?.())
          if (res.status === 200) done++
          else failed++
        }
      }),
    )
    const elapsed = (performance.now() - started) / 1000
    const requests = done + failed
    return {
      rps: done / elapsed,
      requests,
      failed,
      proxyCpuPerRequest: p.proxy === undefined ? Number.NaN : (cpuOf(proxyPids) - cpuBefore.proxy) / requests,
      identityCpuPerRequest: (processCpuMs(identity.child.pid!) - cpuBefore.identity) / requests,
    }
  }

  // Open loop: requests started on a fixed schedule, whatever the answers' pace; latency per request.
  const atRate = async (url: string, rps: number) => {
    const latencies: Array<number> = []
    let failed = 0
    const interval = 1000 / rps
    const started = performance.now()
    const total = Math.floor(rps * seconds)
    const inflight: Array<Promise<void>> = []
    for (let i = 0; i < total; i++) {
      const due = started + i * interval
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      inflight.push(
        (async () => {
          const t = performance.now()
          const res = await call(url, token)
          if (res.status === 200) latencies.push(performance.now() - t)
          else failed++
        })(),
      )
    }
    await Promise.all(inflight)
    latencies.sort((a, b) => a - b)
    return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), failed }
  }

  // Every path under load first, so that the rounds measure code the JIT has compiled (identity's first round ran
  // 30-40 % slower than the next ones without this).
  for (const p of paths) await maxRate(p, warmup)
  // Alternating rounds, medians: the machine's drift (other work, JIT, GC) lands on every path alike. Each round
  // starts one path later than the one before, so that no path always follows the same one.
  const byPath = new Map<string, Array<Round>>(paths.map((p) => [p.name, []]))
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < paths.length; i++) {
      const p = paths[(round + i) % paths.length]!
      byPath.get(p.name)!.push(await maxRate(p))
    }
  }
  // Each function's RSS (and the forwarder's) at the end of the load: after the last round, before the serial runs.
  const rssAtEnd: Record<string, number> = {}
  for (const [name, fn] of platform.functions) rssAtEnd[name] = rssBytes(fn.child.pid!)
  rssAtEnd.forwarder = rssBytes(forwarder.pids()[0]!)
  const summary = Object.fromEntries(
    paths.map((p) => {
      const runs = byPath.get(p.name)!
      return [
        p.name,
        {
          rps: median(runs.map((r) => r.rps)),
          rounds: runs.map((r) => Math.round(r.rps)),
          failed: runs.reduce((sum, r) => sum + r.failed, 0),
          proxyCpuMsPerRequest: p.proxy === undefined ? null : median(runs.map((r) => r.proxyCpuPerRequest)),
          identityCpuMsPerRequest: median(runs.map((r) => r.identityCpuPerRequest)),
        },
      ]
    }),
  ) as Record<
    Path["name"],
    {
      rps: number
      rounds: Array<number>
      failed: number
      proxyCpuMsPerRequest: number | null
      identityCpuMsPerRequest: number
    }
  >
  const direct = summary.direct
  const gateway = summary.gateway
  const bare = summary.forwarder

  // One client, one request at a time: the latency each proxy adds when nothing queues (its own cost per request;
  // on two shared cores the loaded figures below are mostly queueing behind the other processes).
  const serial = async (url: string, headers?: () => Record<string, string>) => {
    const latencies: Array<number> = []
    const end = performance.now() + Math.min(seconds, 5) * 1000
    while (performance.now() < end) {
      const t = performance.now()
      await call(url, token, undefined, headers?.())
      latencies.push(performance.now() - t)
    }
    latencies.sort((a, b) => a - b)
    return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) }
  }
  const serialOf: Record<string, { p50: number; p99: number }> = {}
  for (const p of paths) serialOf[p.name] = await serial(`${p.base}${path}`, p.headers)
  const directSerial = serialOf.direct!

  const half = Math.max(1, Math.floor(direct.rps / 2))
  const directAt = await atRate(`${identity.url}${path}`, half)
  const gatewayAt = await atRate(`${platform.url}${path}`, half)

  const ratios = {
    gatewayToDirectRps: gateway.rps / direct.rps,
    gatewayToForwarderRps: gateway.rps / bare.rps,
    forwarderToDirectRps: bare.rps / direct.rps,
    nginxToDirectRps: summary.nginx === undefined ? null : summary.nginx.rps / direct.rps,
    gatewayToForwarderCpu: (gateway.proxyCpuMsPerRequest ?? Number.NaN) / (bare.proxyCpuMsPerRequest ?? Number.NaN),
    nginxToForwarderCpu:
      summary.nginx === undefined
        ? null
        : (summary.nginx.proxyCpuMsPerRequest ?? Number.NaN) / (bare.proxyCpuMsPerRequest ?? Number.NaN),
  }
  const added = { p50: gatewayAt.p50 - directAt.p50, p99: gatewayAt.p99 - directAt.p99 }
  const verdict = (ok: boolean) => (ok ? "ok" : "MISSED")
  const met = {
    gatewayToForwarderRps: ratios.gatewayToForwarderRps >= TARGET.gatewayToForwarderRps,
    gatewayToForwarderCpu: ratios.gatewayToForwarderCpu <= TARGET.gatewayToForwarderCpu,
    gatewayToDirectRps: ratios.gatewayToDirectRps >= TARGET.gatewayToDirectRps,
    addedP99: added.p99 <= TARGET.addedP99Ms,
    rss: Object.entries(rssAtEnd).every(
      ([name, rss]) => name === "forwarder" || rss <= TARGET.rssToBareIdle * bareIdleRss,
    ),
  }

  const ms = (n: number) => `${n.toFixed(2)} ms`
  const cpu = (n: number | null) => (n === null || !Number.isFinite(n) ? "-" : `${n.toFixed(3)} ms`)
  console.log(`\ngateway tax: GET ${path.replace(userId, "{id}")} (JWT + permission + rate limit), ${seconds} s each`)
  console.log(
    `measured: ${measured.commit}${measured.uncommitted.length > 0 ? ` + uncommitted ${measured.uncommitted.join(", ")}` : ""}`,
  )
  console.log(`functions run from: ${imagesDir === undefined ? "their TypeScript sources" : "their images' files"}`)
  console.log(`node options of the functions and the forwarder: ${values["node-options"] || "(none: V8's own sizing)"}`)
  console.log(`max rate, ${concurrency} clients, median of ${rounds} rounds (paths alternating):`)
  const header = ["path", "rps", "rounds", "proxy CPU/req", "identity CPU/req", "non-200"]
  const rows = paths.map((p) => {
    const s = summary[p.name]
    return [
      p.name,
      s.rps.toFixed(0),
      s.rounds.join(", "),
      cpu(s.proxyCpuMsPerRequest),
      cpu(s.identityCpuMsPerRequest),
      String(s.failed),
    ]
  })
  if (nginxSkipped !== undefined) rows.push(["nginx", "skipped", nginxSkipped, "", "", ""])
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.filter((r) => r[1] !== "skipped").map((r) => r[i]!.length)),
  )
  for (const row of [header, ...rows]) {
    const cells =
      row[1] === "skipped"
        ? [row[0]!.padEnd(widths[0]!), `skipped: ${row[2]}`]
        : row.map((c, i) => (i === 0 || i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
    console.log(`  ${cells.join("  ").trimEnd()}`)
  }
  if (nginx !== undefined)
    console.log(
      `  (nginx ${nginx.version}, ${nginxWorkers} worker${nginxWorkers === 1 ? "" : "s"}; its CPU is master + workers)`,
    )
  console.log(
    `gateway / forwarder rps ${ratios.gatewayToForwarderRps.toFixed(2)} (target ≥ ${TARGET.gatewayToForwarderRps}: ` +
      `${verdict(met.gatewayToForwarderRps)})`,
  )
  console.log(
    `gateway / forwarder CPU per request ${ratios.gatewayToForwarderCpu.toFixed(2)} ` +
      `(target ≤ ${TARGET.gatewayToForwarderCpu}: ${verdict(met.gatewayToForwarderCpu)})`,
  )
  console.log(
    `gateway / direct rps ${ratios.gatewayToDirectRps.toFixed(2)} (target ≥ ${TARGET.gatewayToDirectRps}: ` +
      `${verdict(met.gatewayToDirectRps)}); forwarder / direct ${ratios.forwarderToDirectRps.toFixed(2)}` +
      (ratios.nginxToDirectRps === null ? "" : `; nginx / direct ${ratios.nginxToDirectRps.toFixed(2)}`),
  )
  console.log("1 client, one request at a time (p50 / p99, and what each adds to the direct path):")
  for (const p of paths) {
    const s = serialOf[p.name]!
    console.log(
      `  ${p.name.padEnd(14)} p50 ${ms(s.p50)} p99 ${ms(s.p99)}` +
        (p.name === "direct" ? "" : `; added p50 ${ms(s.p50 - directSerial.p50)} p99 ${ms(s.p99 - directSerial.p99)}`),
    )
  }
  console.log(`at ${half} rps (half the direct max), open loop:`)
  console.log(`  direct  p50 ${ms(directAt.p50)} p99 ${ms(directAt.p99)}`)
  console.log(`  gateway p50 ${ms(gatewayAt.p50)} p99 ${ms(gatewayAt.p99)}`)
  console.log(
    `  added   p50 ${ms(added.p50)} p99 ${ms(added.p99)} (target p99 ≤ ${TARGET.addedP99Ms} ms: ${verdict(met.addedP99)})`,
  )
  console.log(
    `RSS at the end of the load, against a bare node:http server's idle RSS (${mib(bareIdleRss)} MiB; ` +
      `target ≤ ${TARGET.rssToBareIdle}× for each function: ${verdict(met.rss)}):`,
  )
  for (const [name, rss] of Object.entries(rssAtEnd)) {
    console.log(`  ${name.padEnd(9)} ${mib(rss).padStart(6)} MiB  ${(rss / bareIdleRss).toFixed(2)}×`)
  }
  const failures = Object.values(summary).reduce((sum, s) => sum + s.failed, 0) + directAt.failed + gatewayAt.failed
  if (failures > 0) console.log(`non-200 answers: ${failures}`)

  let profiles: Record<string, unknown> | undefined
  if (profileDir !== undefined) {
    // Written as the processes exit: stop them first.
    await stop()
    profiles = {}
    for (const [name, pid] of [
      ["gateway", gatewayPid],
      ["forwarder", extra[0]?.pid],
    ] as const) {
      const file = readdirSync(profileDir).find((f) => f.includes(`.${pid}.`) && f.endsWith(".cpuprofile"))
      if (file === undefined) {
        console.log(`${name}: no CPU profile in ${profileDir}`)
        continue
      }
      const top = profileTop(JSON.parse(readFileSync(join(profileDir, file), "utf8")), 20)
      profiles[name] = { file: join(profileDir, file), ...top }
      console.log(`\n${name} CPU profile ${join(profileDir, file)}: ${top.busyMs.toFixed(0)} ms busy (idle left out)`)
      console.log("  by where the code lives (self time):")
      for (const g of top.byOrigin.slice(0, 12)) console.log(`    ${g.share.toFixed(1).padStart(5)} %  ${g.origin}`)
      console.log("  top functions (self time):")
      for (const f of top.functions) console.log(`    ${f.share.toFixed(1).padStart(5)} %  ${f.name}  ${f.where}`)
    }
  }

  console.log(
    JSON.stringify({
      bench: "gateway",
      commit: measured.commit,
      uncommitted: measured.uncommitted,
      seconds,
      concurrency,
      rounds,
      nodeOptions: values["node-options"],
      from: imagesDir === undefined ? "sources" : "images",
      nginx: nginx === undefined ? { skipped: nginxSkipped } : { version: nginx.version, workers: nginxWorkers },
      paths: summary,
      directRps: direct.rps,
      gatewayRps: gateway.rps,
      forwarderRps: bare.rps,
      nginxRps: summary.nginx?.rps ?? null,
      cpuMsPerRequest: {
        gateway: gateway.proxyCpuMsPerRequest,
        forwarder: bare.proxyCpuMsPerRequest,
        nginx: summary.nginx?.proxyCpuMsPerRequest ?? null,
      },
      ratios,
      ratio: ratios.gatewayToDirectRps,
      targets: TARGET,
      met,
      serial: serialOf,
      rate: half,
      direct: directAt,
      gateway: gatewayAt,
      added,
      rssMiB: {
        bareIdle: Number(mib(bareIdleRss)),
        atEndOfLoad: Object.fromEntries(Object.entries(rssAtEnd).map(([name, rss]) => [name, Number(mib(rss))])),
      },
      rssToBareIdle: Object.fromEntries(Object.entries(rssAtEnd).map(([name, rss]) => [name, rss / bareIdleRss])),
      failures,
      ...(profiles === undefined ? {} : { profiles }),
    }),
  )
} finally {
  await agent.close()
  await stop()
}
