// Memory of `npm start`: the whole platform on one machine (every function, embedded Postgres), started as a
// developer starts it, in a temporary data folder and on moved ports; the RSS of its whole process tree once it is up
// and idle, summed from /proc (Linux), with each process's share.
//   node bench/memory.ts [--idle-ms MS] [--samples N]
// Each process's own RSS counts the pages it shares with others (Node's binary, shared libraries) in full, so the sum
// is an upper bound; PSS (shared pages divided among their users) is printed beside it and adds up exactly.
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { parseArgs } from "node:util"
import { ROOT } from "../scripts/build.ts"
import { embeddedEnv, freePortOffset } from "../scripts/lib/embedded.ts"
import { spawnChild } from "../scripts/lib/processes.ts"
import { freePort } from "../shared/testing/ports.ts"
import { mib, processTree, pssBytes, quantile, rssBytes, textTable } from "./lib.ts"

const MAX_TOTAL_BYTES = 1024 * 1024 * 1024

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    "idle-ms": { type: "string", default: "5000" },
    samples: { type: "string", default: "5" },
  },
})
const idleMs = Math.max(0, Number(values["idle-ms"]))
const samples = Math.max(1, Number(values.samples))

const offset = await freePortOffset()
const dataDir = mkdtempSync(join(tmpdir(), "bench-memory-"))
// npm start's own defaults: nothing configured, so Postgres, Redis, Kafka and S3 are the embedded ones.
const env = embeddedEnv({
  PORT_OFFSET: String(offset),
  DATA_DIR: dataDir,
  EMBEDDED_PG_PORT: String(await freePort()),
  LOG_PRETTY: "false",
  NODE_ENV: undefined,
  NODE_COMPILE_CACHE: undefined,
})

console.log(`npm start (PORT_OFFSET=${offset}, DATA_DIR=${dataDir}) …`)
const started = performance.now()
let upMs = Number.NaN
const platform = spawnChild({
  name: "npm start",
  command: "npm",
  args: ["start"],
  cwd: ROOT,
  env,
  tailChars: 20_000,
  onLine: (line) => {
    if (/ up in [\d.]+s/.test(line)) upMs = performance.now() - started
  },
})

interface Sample {
  readonly total: number
  readonly totalPss: number
  readonly processes: ReadonlyArray<{ pid: number; label: string; rss: number; pss: number }>
}
// "identity", "scripts/start.ts", "npm start": what a process is, from its command line.
const label = (pid: number, name: string) => {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean)
    const fn = argv.find((a) => /functions\/[^/]+\/main\.ts$/.test(a))
    if (fn) return fn.split("/")[1]!
    const script = argv.find((a, i) => i > 0 && /\.(ts|mjs|js)$/.test(a) && !a.endsWith("/npm-cli.js"))
    return script ? script.replace(`${ROOT}/`, "") : argv.join(" ").slice(0, 40) || name
  } catch {
    return name
  }
}
const sample = (): Sample => {
  const processes = processTree(platform.pid!).map(({ pid, name }) => ({
    pid,
    label: label(pid, name),
    rss: rssBytes(pid),
    pss: pssBytes(pid),
  }))
  const live = processes.filter((p) => Number.isFinite(p.rss))
  return {
    total: live.reduce((sum, p) => sum + p.rss, 0),
    totalPss: live.reduce((sum, p) => sum + (Number.isFinite(p.pss) ? p.pss : 0), 0),
    processes: live,
  }
}

let taken: Array<Sample> = []
let notReady: Array<string> = []
try {
  const deadline = Date.now() + 180_000
  while (Number.isNaN(upMs)) {
    if (platform.exit !== undefined) throw new Error(`npm start exited before it was up:\n${platform.output()}`)
    if (Date.now() > deadline) throw new Error(`npm start not up after 180 s:\n${platform.output()}`)
    await sleep(100)
  }
  notReady = platform
    .output()
    .split("\n")
    .filter((l) => l.includes("NOT READY"))
  console.log(`up in ${(upMs / 1000).toFixed(1)} s; idle ${idleMs} ms, then ${samples} samples 1 s apart`)
  await sleep(idleMs)
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(1_000)
    taken.push(sample())
  }
} finally {
  // SIGTERM to every process of the tree (all started here): start.ts drains its functions and stops Postgres, the
  // wrappers (npm, node24.mjs) follow; whatever still runs after 20 s is killed.
  const tree = platform.pid === undefined ? [] : processTree(platform.pid)
  for (const p of [...tree].reverse()) {
    try {
      process.kill(p.pid, "SIGTERM")
    } catch {
      // Already gone.
    }
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ")
    } catch {
      return false
    }
  }
  const until = Date.now() + 20_000
  while (tree.some((p) => alive(p.pid)) && Date.now() < until) await sleep(100)
  for (const p of tree.filter((p) => alive(p.pid))) {
    process.kill(p.pid, "SIGKILL")
    console.log(`killed ${p.name} (${p.pid}): still running 20 s after SIGTERM`)
  }
  await platform.stop(1_000)
  rmSync(dataDir, { recursive: true, force: true })
}
taken = taken.filter((s) => s.processes.length > 0)

// The sample of median total; its processes for the table.
const totals = taken.map((s) => s.total)
const medianTotal = quantile(totals, 0.5)
const typical = taken.reduce((best, s) =>
  Math.abs(s.total - medianTotal) < Math.abs(best.total - medianTotal) ? s : best,
)
const met = medianTotal <= MAX_TOTAL_BYTES
console.log("")
console.log(
  textTable(
    ["process", "pid", "RSS", "PSS"],
    [
      ...typical.processes.map((p) => [p.label, String(p.pid), `${mib(p.rss)} MiB`, `${mib(p.pss)} MiB`]),
      ["total", "", `${mib(typical.total)} MiB`, `${mib(typical.totalPss)} MiB`],
    ],
  ),
)
console.log(
  `\nnpm start total RSS (median of ${taken.length}): ${mib(medianTotal)} MiB (target ≤ 1024 MiB: ${met ? "ok" : "MISSED"})`,
)
if (notReady.length > 0) console.log(`not ready:\n${notReady.join("\n")}`)
console.log(
  JSON.stringify({
    bench: "memory",
    date: new Date().toISOString(),
    node: process.versions.node,
    upMs: Math.round(upMs),
    idleMs,
    samples: taken.length,
    target: { totalRssMiB: 1024 },
    totalRssMiB: Number(mib(medianTotal)),
    totalPssMiB: Number(mib(typical.totalPss)),
    met,
    notReady: notReady.length,
    processes: typical.processes.map((p) => ({
      label: p.label,
      rssMiB: Number(mib(p.rss)),
      pssMiB: Number(mib(p.pss)),
    })),
  }),
)
