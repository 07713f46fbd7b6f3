// A small cold-start harness: spawn a command, time spawn -> first HTTP 200, repeat, summarise.

import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { readdirSync, readFileSync } from "node:fs"
import { get } from "node:http"
import { Session } from "node:inspector/promises"
import { join } from "node:path"
import { NotReady, spawnChild, waitForHttp } from "../scripts/lib/processes.ts"
import { freePort } from "../shared/testing/ports.ts"

/**
 * One thing to start and time. Every spawn gets free ports in HTTP_PORT and GRPC_PORT; `{port}` in `url` is the
 * HTTP one.
 */
export interface Case {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly url: string
  readonly env?: Record<string, string | undefined>
  readonly cwd?: string
  /** Bytes of the artefact started (shown in the table), if it is one file. */
  readonly bytes?: number
  /** Runs before the timed ones, not counted (e.g. to warm a compile cache). */
  readonly warmups?: number
  /** Marks the row against which others are compared. */
  readonly baseline?: boolean
  /** Printed next to the figures, e.g. "≤ 2.5× baseline". Targets are reported, never enforced. */
  readonly target?: { readonly label: string; readonly ok: (median: number, baseline: number) => boolean }
}

/** Timed samples of one case. */
export interface Result {
  readonly case: Case
  readonly samples: ReadonlyArray<number>
  readonly failures: ReadonlyArray<string>
}

/** Milliseconds from spawn to the first 200 on the case's URL (polled every `pollMs`); the process is stopped after. */
export const readyTime = async (c: Case, options: { pollMs?: number; timeoutMs?: number } = {}): Promise<number> => {
  const { pollMs = 5, timeoutMs = 15_000 } = options
  const port = await freePort()
  const grpcPort = await freePort()
  const url = c.url.replaceAll("{port}", String(port))
  const started = performance.now()
  const child = spawnChild({
    name: c.name,
    command: c.command,
    args: c.args,
    cwd: c.cwd,
    env: { ...process.env, ...c.env, HTTP_PORT: String(port), GRPC_PORT: String(grpcPort) },
    stdout: "ignore",
    tailChars: 2_000,
  })
  try {
    await waitForHttp(url, { child, timeoutMs, intervalMs: pollMs, requestTimeoutMs: 100 }).catch((e: unknown) => {
      // The table names the case: the failure says only what went wrong and what the process printed.
      throw e instanceof NotReady ? new Error(`${e.reason}: ${e.output.trim()}`) : e
    })
    return performance.now() - started
  } finally {
    await child.stop()
  }
}

/** The q-quantile (0..1) of samples, interpolated. */
export const quantile = (samples: ReadonlyArray<number>, q: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (sorted.length - 1) * q
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return (sorted[lo] ?? 0) + ((sorted[hi] ?? 0) - (sorted[lo] ?? 0)) * (at - lo)
}

/**
 * Runs every case `runs` times, interleaved (round-robin), so that load changes on the machine hit every case
 * alike. Warm-up runs happen first and are not counted. Failed runs are recorded, not thrown.
 */
export const run = async (
  cases: ReadonlyArray<Case>,
  runs: number,
  onProgress: (round: number) => void = () => {},
): Promise<Array<Result>> => {
  const results = cases.map((c) => ({ case: c, samples: [] as Array<number>, failures: [] as Array<string> }))
  for (const r of results) {
    for (let i = 0; i < (r.case.warmups ?? 0); i++) {
      await readyTime(r.case).catch((e: unknown) => r.failures.push(`warm-up: ${String(e)}`))
    }
  }
  for (let round = 1; round <= runs; round++) {
    for (const r of results) {
      await readyTime(r.case).then(
        (ms) => r.samples.push(ms),
        (e: unknown) => r.failures.push(e instanceof Error ? e.message : String(e)),
      )
    }
    onProgress(round)
  }
  return results
}

const fmt = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(1) : "-")
const size = (bytes: number | undefined) =>
  bytes === undefined
    ? ""
    : bytes >= 1024 * 1024
      ? `${(bytes / 1024 / 1024).toFixed(2)} MB`
      : `${(bytes / 1024).toFixed(0)} KB`

/** A table of median/p90/min ready times with the ratio of each median to the baseline's and its target. */
export const table = (results: ReadonlyArray<Result>): string => {
  const baseline = results.find((r) => r.case.baseline) ?? results[0]
  const base = baseline ? quantile(baseline.samples, 0.5) : Number.NaN
  const header = ["case", "n", "median ms", "p90 ms", "min ms", "× baseline", "size", "target"]
  const rows = results.map((r) => {
    const median = quantile(r.samples, 0.5)
    const target = r.case.target
    const verdict =
      target && Number.isFinite(median) ? `${target.label} ${target.ok(median, base) ? "ok" : "MISSED"}` : ""
    return [
      r.case.name,
      `${r.samples.length}${r.failures.length > 0 ? ` (${r.failures.length} failed)` : ""}`,
      fmt(median),
      fmt(quantile(r.samples, 0.9)),
      fmt(Math.min(...r.samples)),
      r === baseline ? "1.00" : (median / base).toFixed(2),
      size(r.case.bytes),
      verdict,
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)))
  const numeric = new Set([1, 2, 3, 4, 5, 6])
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}

/**
 * CPU time (user + system, ms) a process has used so far, from its own counters in `/proc/<pid>/stat` (Linux, clock
 * ticks of 1/100 s); NaN when it cannot be read (not Linux, or the process is gone).
 */
export const processCpuMs = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // The command name (field 2) may hold spaces and parentheses: the fields after it start past the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100
  } catch {
    return Number.NaN
  }
}

/** The pids of a process's direct children (e.g. nginx's workers under its master), from `/proc` (Linux). */
export const childPids = (pid: number): Array<number> => {
  const children: Array<number> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      if (parent === pid) children.push(Number(entry))
    } catch {
      // Gone between the listing and the read.
    }
  }
  return children
}

// ---- Spawn → first 200 of a real route, and the process's memory after (bench/cold-start.ts, bench/memory.ts).

/** Resident set size of a process in bytes (`VmRSS` of `/proc/<pid>/status`, Linux); NaN when it cannot be read. */
export const rssBytes = (pid: number): number => procKilobytes(`/proc/${pid}/status`, "VmRSS")

// A "<field>: <n> kB" line of a /proc file, in bytes; NaN when it cannot be read (another OS, a process gone).
const procKilobytes = (file: string, field: string): number => {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(fs.readFileSync(file, "utf8"))
    return match ? Number(match[1]) * 1024 : Number.NaN
  } catch {
    return Number.NaN
  }
}

/**
 * Proportional set size of a process in bytes (`Pss` of `/proc/<pid>/smaps_rollup`): its RSS with every shared page
 * divided among the processes sharing it, so that the PSS of several processes adds up; NaN when it cannot be read.
 */
export const pssBytes = (pid: number): number => procKilobytes(`/proc/${pid}/smaps_rollup`, "Pss")

/** A process and every process below it (children, grandchildren, ...), from the parent pids in `/proc/<pid>/stat`. */
export const processTree = (root: number): Array<{ readonly pid: number; readonly name: string }> => {
  const parents = new Map<number, Array<{ pid: number; name: string }>>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "utf8")
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"))
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      parents.set(parent, [...(parents.get(parent) ?? []), { pid: Number(entry), name }])
    } catch {
      // Gone between the listing and the read.
    }
  }
  const tree: Array<{ pid: number; name: string }> = [{ pid: root, name: "" }]
  for (let i = 0; i < tree.length; i++) tree.push(...(parents.get(tree[i]!.pid) ?? []))
  return tree
}

/** What a request answered: its status and body (the body's first 300 characters when it is not a 2xx). */
export const httpGet = (
  url: string,
  options: { readonly headers?: Record<string, string>; readonly timeoutMs?: number } = {},
): Promise<{ readonly status: number; readonly text: string }> =>
  new Promise((resolve) => {
    const request = get(url, { agent: false, timeout: options.timeoutMs ?? 5_000, headers: options.headers }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        body += chunk
      })
      const done = () => {
        const status = res.statusCode ?? 0
        resolve({ status, text: status >= 200 && status < 300 ? body : `${status} ${body.slice(0, 300)}` })
      }
      res.on("end", done)
      res.on("error", done)
    })
    request.on("timeout", () => request.destroy(new Error("no answer in time")))
    request.on("error", (error) => resolve({ status: 0, text: error.message }))
  })

/** One function (or baseline) to start and time up to the first 200 of `url` (with `headers`), then measure. */
export interface RouteCase {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd?: string
  /** The child's whole environment, made afresh for each start (e.g. with a fresh copy of a compile cache). */
  readonly env: () => Record<string, string | undefined>
  /** `{port}` is the child's HTTP_PORT. */
  readonly url: string
  /** The request's headers, asked for at each start (e.g. a fresh access token). */
  readonly headers?: () => Record<string, string>
  /** Runs before the timed ones, not counted. */
  readonly warmups?: number
  readonly baseline?: boolean
  /** Shown in the report, e.g. `GET /api/v1/users/me (signed in)`. */
  readonly route: string
}

/** One start: ms from spawn to the first 200, RSS when it answered, and RSS after `idleMs` without requests. */
export interface RouteSample {
  readonly ms: number
  readonly rssAtAnswer: number
  readonly rssIdle: number
}

export interface RouteResult {
  readonly case: RouteCase
  readonly samples: ReadonlyArray<RouteSample>
  readonly failures: ReadonlyArray<string>
}

/**
 * Spawns the case's command on free ports and polls its URL every `pollMs` (a refused connection is retried at once,
 * a request that is answered is waited for however long it takes) until it answers 2xx; then, without further
 * requests, waits `idleMs` and reads the process's RSS. The process is stopped after.
 */
export const measureRoute = async (
  c: RouteCase,
  options: { readonly pollMs?: number; readonly timeoutMs?: number; readonly idleMs?: number } = {},
): Promise<RouteSample> => {
  const { pollMs = 5, timeoutMs = 30_000, idleMs = 2_000 } = options
  const port = await freePort()
  const grpcPort = await freePort()
  const url = c.url.replaceAll("{port}", String(port))
  const env = { ...c.env(), HTTP_PORT: String(port), GRPC_PORT: String(grpcPort) }
  const headers = c.headers?.()
  const started = performance.now()
  const child = spawnChild({
    name: c.name,
    command: c.command,
    args: c.args,
    cwd: c.cwd,
    env,
    // BENCH_LOGS=1 keeps what the process prints for the failure messages (read through a pipe: not for figures).
    stdout: process.env.BENCH_LOGS === "1" ? "keep" : "ignore",
    tailChars: 2_000,
  })
  try {
    let last = ""
    // Answers before the 2xx, by status (0: no connection), for the error message.
    const before = new Map<number, number>()
    while (true) {
      if (child.exit !== undefined) throw new Error(`exited before answering: ${child.output().trim()}`)
      const answer = await httpGet(url, { headers, timeoutMs: 10_000 })
      if (answer.status >= 200 && answer.status < 300) break
      last = answer.text
      // Not "not ready yet" (that is no connection, or 503): a failure that polling would only repeat.
      if (answer.status === 500) throw new Error(`answered ${last}`)
      before.set(answer.status, (before.get(answer.status) ?? 0) + 1)
      if (performance.now() - started > timeoutMs) {
        const counts = [...before].map(([status, n]) => `${n}× ${status}`).join(", ")
        throw new Error(`no 2xx after ${timeoutMs} ms (${counts}; last: ${last}): ${child.output().trim()}`)
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs))
    }
    const ms = performance.now() - started
    const pid = child.pid ?? -1
    const rssAtAnswer = rssBytes(pid)
    await new Promise((resolve) => setTimeout(resolve, idleMs))
    return { ms, rssAtAnswer, rssIdle: rssBytes(pid) }
  } finally {
    await child.stop()
  }
}

/** Every case `runs` times, interleaved (round-robin), after its warm-ups; failed runs are recorded, not thrown. */
export const runRoutes = async (
  cases: ReadonlyArray<RouteCase>,
  runs: number,
  options: { readonly idleMs?: number; readonly onProgress?: (round: number) => void | Promise<void> } = {},
): Promise<Array<RouteResult>> => {
  const results = cases.map((c) => ({ case: c, samples: [] as Array<RouteSample>, failures: [] as Array<string> }))
  const once = (r: (typeof results)[number], counted: boolean) =>
    measureRoute(r.case, { idleMs: options.idleMs }).then(
      (sample) => counted && r.samples.push(sample),
      (e: unknown) => r.failures.push(`${counted ? "" : "warm-up: "}${e instanceof Error ? e.message : String(e)}`),
    )
  for (const r of results) for (let i = 0; i < (r.case.warmups ?? 0); i++) await once(r, false)
  for (let round = 1; round <= runs; round++) {
    for (const r of results) await once(r, true)
    await options.onProgress?.(round)
  }
  return results
}

/** Megabytes (MiB) with one decimal. */
export const mib = (bytes: number): string => (Number.isFinite(bytes) ? (bytes / 1024 / 1024).toFixed(1) : "-")

/** A plain text table: the first column left-aligned, the others right-aligned. */
export const textTable = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}

/** A V8 CPU profile (`node --cpu-prof`), as far as `profileTop` reads it. */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  }>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

// Where a function's code lives: a package, Node's own modules, the platform's code by folder, or V8's own entries.
const originOf = (functionName: string, url: string): string => {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)"
  const modules = url.lastIndexOf("/node_modules/")
  if (modules !== -1) {
    const [scope, name] = url.slice(modules + "/node_modules/".length).split("/")
    return scope?.startsWith("@") ? `${scope}/${name}` : (scope ?? url)
  }
  if (url.startsWith("node:")) return "node: built-ins"
  const own = /\/(functions\/[^/]+|shared|bench|scripts|e2e)\//.exec(url)
  return own?.[1] ?? url
}

/**
 * Self time of a CPU profile by function and by where the code lives, busiest first, as shares of the time the
 * process was not idle (`(idle)` left out; `(garbage collector)` and `(program)` kept).
 */
export const profileTop = (
  profile: CpuProfile,
  count = 20,
): {
  busyMs: number
  functions: Array<{ name: string; where: string; ms: number; share: number }>
  byOrigin: Array<{ origin: string; ms: number; share: number }>
} => {
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]))
  const self = new Map<number, number>()
  // A sample lasts until the next one (the last one's length is unknown: left out).
  for (let i = 0; i + 1 < profile.samples.length; i++) {
    const id = profile.samples[i]!
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0))
  }
  const functions = new Map<string, { name: string; where: string; us: number }>()
  const origins = new Map<string, number>()
  let busy = 0
  for (const [id, us] of self) {
    const frame = byId.get(id)
    if (frame === undefined || frame.functionName === "(idle)") continue
    busy += us
    const name = frame.functionName || "(anonymous)"
    const short = frame.url.replace(/^.*\/node_modules\//, "").replace(/^.*\/(functions|shared|bench)\//, "$1/")
    const where = frame.url === "" ? "" : `${short}:${frame.lineNumber + 1}`
    const key = `${name} ${where}`
    const entry = functions.get(key) ?? { name, where, us: 0 }
    entry.us += us
    functions.set(key, entry)
    const origin = originOf(frame.functionName, frame.url)
    origins.set(origin, (origins.get(origin) ?? 0) + us)
  }
  const share = (us: number) => (busy === 0 ? 0 : (100 * us) / busy)
  return {
    busyMs: busy / 1000,
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, count)
      .map((f) => ({ name: f.name, where: f.where, ms: f.us / 1000, share: share(f.us) })),
    byOrigin: [...origins.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([origin, us]) => ({ origin, ms: us / 1000, share: share(us) })),
  }
}

/**
 * What a bench measured: the commit checked out, and which of `paths` (the code the platform runs) differ from it,
 * so a figure taken with uncommitted edits says so.
 */
export const measuredCommit = (paths: ReadonlyArray<string>): { commit: string; uncommitted: Array<string> } => {
  const root = join(import.meta.dirname, "..")
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8" }).trim()
    const dirty = execFileSync("git", ["status", "--porcelain", "--", ...paths], { cwd: root, encoding: "utf8" })
    // Porcelain lines are "XY path": the status letters may start with a space, so the lines are not trimmed.
    return {
      commit,
      uncommitted: dirty
        .split("\n")
        .filter((line) => line.length > 3)
        .map((line) => line.slice(3)),
    }
  } catch {
    return { commit: "unknown", uncommitted: [] }
  }
}

/** Runs `f` under this process's V8 CPU profiler when `dir` is given, writing `dir/<file>`; else just runs it. */
export const profiled = async <A>(dir: string | undefined, file: string, f: () => Promise<A>): Promise<A> => {
  if (dir === undefined) return f()
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.start")
  try {
    return await f()
  } finally {
    const { profile } = await session.post("Profiler.stop")
    fs.mkdirSync(dir, { recursive: true })
    fs.writeFileSync(join(dir, file), JSON.stringify(profile))
    session.disconnect()
  }
}

/** The address `url` of a Postgres server names, with database `name` instead (the platform's own, under a bench). */
export const databaseNamed = (url: string, name: string): string => {
  const at = new URL(url)
  at.pathname = `/${name}`
  return at.toString()
}
