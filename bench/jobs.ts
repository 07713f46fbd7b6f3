// Durable jobs (shared/Jobs.ts, pg-boss), the issue 15 targets: due → started p99 < 1 s at 1,000 jobs/s, and the
// time until a job whose worker was killed with SIGKILL runs again.
//   open loop: a producer process (a function instance that only enqueues: `Jobs.layer` with `work: false`) enqueues
//              job `tick` at a fixed offered rate, due now, each with its number and its scheduled enqueue time in its
//              data; this process is the worker instance (`Jobs.layer` with the kernel's defaults) whose handler
//              records when each run starts. Latency = started − scheduled time, so a producer falling behind counts
//              (what a caller waits for); "from due" = started − the job's due time in the store (its `startAfter`,
//              what the kernel's `jobs_lag_seconds` observes). Two enqueue paths: `single` (`Jobs.enqueue`, one INSERT
//              per job, as many in flight as the pool takes) and `batch` (`Jobs.enqueueMany`, the jobs due gathered
//              for at most `--linger` ms, up to `--batch` per INSERT). The first `--warmup` s of jobs are not counted;
//              then every job enqueued must run exactly once (counted by its number).
//   crash:     a worker process (like shared/testing/jobsWorker.ts) enqueues and starts a job whose handler never
//              ends; with a second instance running here, the worker is killed with SIGKILL 3 s into the run; timed
//              from the kill to the second instance's start of the same job (its attempt 2).
// On the real Postgres of .env.test, then on the embedded PGlite server of `npm start` (its own process, at
// `--embedded-rate`: it is one serialised session, for development, not load). Each case in a schema of its own,
// dropped after. Prints tables and, last, one JSON line; never asserts.
//   node bench/jobs.ts [--rate 1000] [--seconds 20] [--warmup 5] [--enqueue single,batch] [--batch 10] [--linger 10]
//     [--targets real,embedded] [--embedded-rate 300] [--crash-runs 3] [--embedded-crash-runs 1]
//     [--worker-batch N] [--poll S] [--profile DIR]
import { fork } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import pg from "pg"
import { startEmbeddedPostgres } from "../infra/embedded/postgres.ts"
import { Health } from "../shared/Health.ts"
import * as Jobs from "../shared/Jobs.ts"
import { freePort } from "../shared/testing/ports.ts"
import { measuredCommit, processCpuMs, profiled, quantile, textTable } from "./lib.ts"

const { values } = parseArgs({
  options: {
    role: { type: "string", default: "main" },
    config: { type: "string", default: "{}" },
    rate: { type: "string", default: "1000" },
    seconds: { type: "string", default: "20" },
    warmup: { type: "string", default: "5" },
    enqueue: { type: "string", default: "single,batch" },
    batch: { type: "string", default: "10" },
    linger: { type: "string", default: "10" },
    targets: { type: "string", default: "real,embedded" },
    "embedded-rate": { type: "string", default: "300" },
    "crash-runs": { type: "string", default: "3" },
    "embedded-crash-runs": { type: "string", default: "1" },
    "worker-batch": { type: "string" },
    poll: { type: "string" },
    profile: { type: "string" },
  },
})

const TARGET_RATE = 1_000
const TARGET_P99_MS = 1_000
const TARGET_RECOVERY_MS = 30_000
/** How long a run waits for the last jobs to start after the producer stopped. */
const DRAIN_MS = 60_000
const ROOT = join(import.meta.dirname, "..")

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const send = (message: object) => process.send?.(message)

/** One instance of a function's jobs as the kernel runs them (`Jobs.layer` + `Health`), until `close`. */
const startJobs = async (options: Jobs.JobsOptions<never>) => {
  const scope = Scope.makeUnsafe()
  const context = await Effect.runPromise(
    Layer.buildWithScope(Jobs.layer(options).pipe(Layer.provide(Health.layer)), scope),
  )
  return {
    jobs: Context.get(context, Jobs.Jobs),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}

/** What the parent tells a child process: the store, the schema, and its part. */
interface ChildConfig {
  readonly url: string
  readonly schema: string
  readonly rate?: number
  readonly count?: number
  readonly mode?: "single" | "batch"
  readonly batch?: number
  readonly linger?: number
}
const childConfig = JSON.parse(values.config) as ChildConfig

// ------------------------------------------------------------------------------------------------ producer process

/**
 * `--role producer`: enqueues `count` jobs at `rate`/s from its own event loop once told to start; job n is due to be
 * enqueued at T0 + n/rate. Reports how many were enqueued, how many calls failed, and each call's latency.
 */
const producer = async () => {
  const { jobs, close } = await startJobs({
    service: "bench-jobs-producer",
    url: Redacted.make(childConfig.url),
    schema: childConfig.schema,
    jobs: { tick: Jobs.onDemand(() => Effect.void) },
    work: false,
  })
  const rate = childConfig.rate ?? TARGET_RATE
  const count = childConfig.count ?? 0
  const batch = childConfig.batch ?? 10
  const linger = childConfig.linger ?? 10
  let enqueued = 0
  let failed = 0
  let lastError = ""
  const callMs: Array<number> = []
  const inFlight = new Set<Promise<void>>()
  const call = (n: number, effect: Effect.Effect<unknown, Jobs.JobsError>) => {
    const t = now()
    const p = Effect.runPromise(effect).then(
      () => {
        enqueued += n
        callMs.push(now() - t)
      },
      (e: unknown) => {
        failed += n
        lastError = e instanceof Error ? e.message : String(e)
      },
    )
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
  }
  let pending: Array<{ readonly data: { readonly n: number; readonly t: number } }> = []
  const flush = () => {
    if (pending.length === 0) return
    const items = pending
    pending = []
    call(items.length, jobs.enqueueMany("tick", items))
  }
  process.on("message", async (message: { readonly t: string }) => {
    if (message.t !== "start") return
    const t0 = now() + 20
    let issued = 0
    let maxBehindMs = 0
    while (issued < count) {
      const due = Math.min(count, Math.floor(((now() - t0) / 1000) * rate) + 1)
      if (due > issued) maxBehindMs = Math.max(maxBehindMs, now() - (t0 + (issued * 1000) / rate))
      for (; issued < due; issued++) {
        const data = { n: issued, t: t0 + (issued * 1000) / rate }
        if (childConfig.mode === "single") call(1, jobs.enqueue("tick", data))
        else {
          pending.push({ data })
          if (pending.length >= batch) flush()
        }
      }
      // What has waited `linger` ms since its scheduled time goes now, however few.
      if (pending.length > 0 && now() - pending[0]!.data.t >= linger) flush()
      await sleep(1)
    }
    flush()
    while (inFlight.size > 0) await Promise.all(inFlight)
    send({
      t: "done",
      enqueued,
      failed,
      lastError,
      calls: callMs.length,
      callP50: quantile(callMs, 0.5),
      callP99: quantile(callMs, 0.99),
      callMax: callMs.reduce((a, b) => Math.max(a, b), 0),
      maxBehindMs,
    })
    await close()
    process.exit(0)
  })
  send({ t: "ready" })
}

// ------------------------------------------------------------------------------------------------ crash worker process

/** `--role crash-worker`: enqueues one job with a key and runs it with a handler that never ends (until SIGKILL). */
const crashWorker = async () => {
  const { jobs } = await startJobs({
    service: "bench-jobs-crash",
    url: Redacted.make(childConfig.url),
    schema: childConfig.schema,
    jobs: {
      slow: Jobs.onDemand((_data, run) =>
        Effect.andThen(
          Effect.sync(() => send({ t: "started", attempt: run.attempt })),
          Effect.never,
        ),
      ),
    },
  })
  await Effect.runPromise(jobs.enqueue("slow", {}, { key: "the-one" }))
}

// ------------------------------------------------------------------------------------------------ embedded process

/** `--role embedded`: the embedded PGlite server in a process of its own (as `npm start` runs it, not on the bench's loop). */
const embeddedServer = async () => {
  const dir = mkdtempSync(join(tmpdir(), "bench-jobs-pglite-"))
  const server = await startEmbeddedPostgres(join(dir, "data"), await freePort())
  process.on("disconnect", () => {
    void server.stop().finally(() => {
      rmSync(dir, { recursive: true, force: true })
      process.exit(0)
    })
  })
  send({ t: "ready", url: server.url })
}

// ------------------------------------------------------------------------------------------------ main

interface OpenLoopResult {
  readonly target: string
  readonly mode: "single" | "batch"
  readonly offered: number
  readonly seconds: number
  readonly warmup: number
  readonly enqueued: number
  readonly enqueueFailed: number
  readonly enqueueError?: string
  readonly enqueueCalls: number
  readonly enqueueCallP50Ms: number
  readonly enqueueCallP99Ms: number
  readonly producerMaxBehindMs: number
  /** Jobs counted (scheduled after the warm-up) ÷ the span of their starts. */
  readonly throughput: number
  readonly p50Ms: number
  readonly p95Ms: number
  readonly p99Ms: number
  readonly maxMs: number
  readonly fromDueP50Ms: number
  readonly fromDueP99Ms: number
  readonly ranOnce: number
  readonly lost: number
  readonly duplicated: number
  /** CPU used over the whole run, as a share of one core. */
  readonly producerCpu: number
  readonly workerCpu: number
  readonly workerBatch: number
  readonly pollSeconds: number
}

const forkSelf = (role: string, config: ChildConfig, execArgv: Array<string> = []) =>
  fork(new URL(import.meta.url), ["--role", role, "--config", JSON.stringify(config)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: [...process.execArgv, ...execArgv],
  })

/** The next message of type `t` from a child process. */
const message = <A>(child: ReturnType<typeof fork>, t: string, timeoutMs = 60_000): Promise<A> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${t}" from the child in ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (m: { readonly t: string }) => {
      if (m.t !== t) return
      clearTimeout(timer)
      child.off("message", onMessage)
      resolve(m as A)
    }
    child.on("message", onMessage)
    child.once("exit", (code) => reject(new Error(`child exited (${code}) before "${t}"`)))
  })

const dropSchema = async (url: string, schema: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  } finally {
    await client.end()
  }
}

const workerBatch = values["worker-batch"] === undefined ? undefined : Number(values["worker-batch"])
const pollSeconds = values.poll === undefined ? undefined : Number(values.poll)

const openLoop = async (
  target: string,
  url: string,
  mode: "single" | "batch",
  rate: number,
): Promise<OpenLoopResult> => {
  const seconds = Number(values.seconds)
  const warmup = Number(values.warmup)
  const schema = `bench_jobs_${randomBytes(4).toString("hex")}`
  const count = Math.round((warmup + seconds) * rate)
  const counted = (n: number) => n >= warmup * rate
  const started = new Map<number, number>()
  const latencies: Array<number> = []
  const fromDue: Array<number> = []
  let duplicated = 0
  let first = Number.POSITIVE_INFINITY
  let last = 0
  const worker = await startJobs({
    service: "bench-jobs-worker",
    url: Redacted.make(url),
    schema,
    jobs: {
      tick: Jobs.onDemand((data, run) =>
        Effect.sync(() => {
          const at = now()
          const { n, t } = data as { n: number; t: number }
          if (started.has(n)) {
            duplicated++
            return
          }
          started.set(n, at)
          if (!counted(n)) return
          latencies.push(at - t)
          fromDue.push(at - run.due.getTime())
          first = Math.min(first, at)
          last = Math.max(last, at)
        }),
      ),
    },
    ...(workerBatch === undefined ? {} : { batchSize: workerBatch }),
    ...(pollSeconds === undefined ? {} : { pollSeconds }),
  })
  const name = `${target}-${mode}`
  const child = forkSelf(
    "producer",
    { url, schema, rate, count, mode, batch: Number(values.batch), linger: Number(values.linger) },
    values.profile === undefined
      ? []
      : ["--cpu-prof", "--cpu-prof-dir", values.profile, "--cpu-prof-name", `${name}-producer.cpuprofile`],
  )
  try {
    await message(child, "ready")
    process.stderr.write(`${name}: ${rate}/s for ${warmup} s warm-up + ${seconds} s\n`)
    const cpu0 = { worker: process.cpuUsage(), producer: processCpuMs(child.pid ?? -1) }
    const t0 = now()
    const done = await profiled(values.profile, `${name}-worker.cpuprofile`, async () => {
      child.send({ t: "start" })
      return message<{
        enqueued: number
        failed: number
        lastError: string
        calls: number
        callP50: number
        callP99: number
        maxBehindMs: number
      }>(child, "done", (warmup + seconds) * 1000 + 120_000)
    })
    const producerCpuMs = processCpuMs(child.pid ?? -1) - cpu0.producer
    const deadline = now() + DRAIN_MS
    while (started.size < done.enqueued && now() < deadline) await sleep(20)
    // A run whose completion was lost would run again: give the store a moment to show it.
    await sleep(1_000)
    const cpu = process.cpuUsage(cpu0.worker)
    const elapsed = now() - t0
    return {
      target,
      mode,
      offered: rate,
      seconds,
      warmup,
      enqueued: done.enqueued,
      enqueueFailed: done.failed,
      ...(done.failed > 0 ? { enqueueError: done.lastError } : {}),
      enqueueCalls: done.calls,
      enqueueCallP50Ms: done.callP50,
      enqueueCallP99Ms: done.callP99,
      producerMaxBehindMs: done.maxBehindMs,
      throughput: latencies.length > 1 ? (latencies.length - 1) / ((last - first) / 1000) : 0,
      p50Ms: quantile(latencies, 0.5),
      p95Ms: quantile(latencies, 0.95),
      p99Ms: quantile(latencies, 0.99),
      maxMs: latencies.reduce((a, b) => Math.max(a, b), 0),
      fromDueP50Ms: quantile(fromDue, 0.5),
      fromDueP99Ms: quantile(fromDue, 0.99),
      ranOnce: started.size,
      lost: done.enqueued - started.size,
      duplicated,
      producerCpu: producerCpuMs / elapsed,
      workerCpu: (cpu.user + cpu.system) / 1000 / elapsed,
      workerBatch: workerBatch ?? 10,
      pollSeconds: pollSeconds ?? 0.5,
    }
  } finally {
    child.kill()
    await worker.close()
    await dropSchema(url, `${schema}_jobs`)
  }
}

/** One crash: ms from the SIGKILL of the worker running the job to the other instance's start of it. */
const crashRun = async (url: string): Promise<{ recoveryMs: number; attempt: number }> => {
  const schema = `bench_jobs_${randomBytes(4).toString("hex")}`
  const child = forkSelf("crash-worker", { url, schema })
  let survivor: Awaited<ReturnType<typeof startJobs>> | undefined
  try {
    await message(child, "started")
    let ran: { at: number; attempt: number } | undefined
    // Another instance, running before the crash (its start-up is not part of the recovery).
    survivor = await startJobs({
      service: "bench-jobs-survivor",
      url: Redacted.make(url),
      schema,
      jobs: {
        slow: Jobs.onDemand((_data, run) =>
          Effect.sync(() => {
            ran ??= { at: now(), attempt: run.attempt }
          }),
        ),
      },
    })
    await sleep(3_000) // mid-run, heartbeats sent
    const killed = now()
    child.kill("SIGKILL")
    while (ran === undefined && now() - killed < 120_000) await sleep(10)
    if (ran === undefined) throw new Error("the job did not run again within 120 s of the kill")
    return { recoveryMs: ran.at - killed, attempt: ran.attempt }
  } finally {
    child.kill("SIGKILL")
    await survivor?.close()
    await dropSchema(url, `${schema}_jobs`)
  }
}

const crash = async (target: string, url: string, runs: number) => {
  const samples: Array<{ recoveryMs: number; attempt: number }> = []
  for (let i = 0; i < runs; i++) {
    process.stderr.write(`${target}: crash run ${i + 1}/${runs}\n`)
    samples.push(await crashRun(url))
  }
  const ms = samples.map((s) => s.recoveryMs)
  return { target, runs: samples, medianMs: quantile(ms, 0.5), maxMs: Math.max(...ms) }
}

// What is measured: the commit checked out, and whether the code the platform runs differs from it.
const measured = () => measuredCommit(["shared", "bench"])

const main = async () => {
  // The real servers of `npm run infra:up` (.env.test), unless the environment names them.
  if (!process.env.DATABASE_URL && existsSync(join(ROOT, ".env.test"))) {
    for (const line of readFileSync(join(ROOT, ".env.test"), "utf8").split("\n")) {
      const match = /^([A-Z_]+)=(.*)$/.exec(line)
      if (match) process.env[match[1]!] ??= match[2]
    }
  }
  const realUrl = process.env.DATABASE_URL
  const targets = values.targets.split(",")
  const modes = values.enqueue.split(",") as Array<"single" | "batch">
  if (targets.includes("real") && !realUrl) throw new Error("DATABASE_URL is not set: set -a; . ./.env.test; set +a")
  const openLoops: Array<OpenLoopResult> = []
  const crashes: Array<Awaited<ReturnType<typeof crash>>> = []
  for (const target of targets) {
    let embedded: ReturnType<typeof fork> | undefined
    let url = realUrl!
    if (target === "embedded") {
      embedded = forkSelf("embedded", { url: "", schema: "" })
      url = (await message<{ url: string }>(embedded, "ready")).url
    }
    try {
      const rate = target === "embedded" ? Number(values["embedded-rate"]) : Number(values.rate)
      for (const mode of modes) openLoops.push(await openLoop(target, url, mode, rate))
      const runs = Number(values[target === "embedded" ? "embedded-crash-runs" : "crash-runs"])
      if (runs > 0) crashes.push(await crash(target, url, runs))
    } finally {
      embedded?.disconnect()
    }
  }

  const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : "-")
  console.log(
    `\njobs open loop (due now; latency from the scheduled enqueue time), ${values.seconds} s after ${values.warmup} s warm-up:`,
  )
  console.log(
    textTable(
      [
        "target/enqueue",
        "offered/s",
        "enqueued",
        "failed",
        "call p99 ms",
        "started/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "from due p99",
        "lost",
        "dup",
        "cpu prod/worker",
      ],
      openLoops.map((r) => [
        `${r.target === "embedded" ? "embedded (PGlite)" : "real"} ${r.mode}`,
        String(r.offered),
        String(r.enqueued),
        String(r.enqueueFailed),
        fmt(r.enqueueCallP99Ms, 1),
        fmt(r.throughput),
        fmt(r.p50Ms, 1),
        fmt(r.p95Ms, 1),
        fmt(r.p99Ms, 1),
        fmt(r.maxMs, 1),
        fmt(r.fromDueP99Ms, 1),
        String(r.lost),
        String(r.duplicated),
        `${fmt(r.producerCpu * 100)}% / ${fmt(r.workerCpu * 100)}%`,
      ]),
    ),
  )
  if (crashes.length > 0) {
    console.log("\ncrash recovery (SIGKILL of the worker 3 s into the run → the other instance starts it again):")
    console.log(
      textTable(
        ["target", "runs (s)", "median s", "max s"],
        crashes.map((c) => [
          c.target,
          c.runs.map((r) => (r.recoveryMs / 1000).toFixed(2)).join(", "),
          fmt(c.medianMs / 1000, 2),
          fmt(c.maxMs / 1000, 2),
        ]),
      ),
    )
  }
  const verdicts: Record<string, unknown> = {}
  for (const r of openLoops) {
    if (r.target !== "real") continue
    const rateOk = r.offered >= TARGET_RATE && r.throughput >= 0.98 * r.offered && r.enqueueFailed === 0
    const p99Ok = r.p99Ms < TARGET_P99_MS
    const exactlyOnce = r.lost === 0 && r.duplicated === 0
    verdicts[`real-${r.mode}`] = { rateOk, p99Ok, exactlyOnce, met: rateOk && p99Ok && exactlyOnce }
    console.log(
      `real ${r.mode}: ${fmt(r.throughput)}/s of ${r.offered}/s offered (target ${TARGET_RATE}/s: ${rateOk ? "ok" : "MISSED"}), ` +
        `p99 ${fmt(r.p99Ms, 1)} ms (target < ${TARGET_P99_MS}: ${p99Ok ? "ok" : "MISSED"}), ` +
        `0 lost / 0 duplicated: ${exactlyOnce ? "yes" : `NO (${r.lost} lost, ${r.duplicated} duplicated)`}`,
    )
  }
  for (const c of crashes) {
    const ok = c.maxMs < TARGET_RECOVERY_MS
    verdicts[`crash-${c.target}`] = { recoveryOk: ok, met: ok }
    console.log(
      `crash recovery (${c.target}): median ${fmt(c.medianMs / 1000, 2)} s, max ${fmt(c.maxMs / 1000, 2)} s (target < ${TARGET_RECOVERY_MS / 1000} s: ${ok ? "ok" : "MISSED"})`,
    )
  }
  console.log(
    JSON.stringify({
      bench: "jobs",
      measured: measured(),
      date: new Date().toISOString(),
      settings: {
        rate: Number(values.rate),
        embeddedRate: Number(values["embedded-rate"]),
        seconds: Number(values.seconds),
        warmup: Number(values.warmup),
        batch: Number(values.batch),
        lingerMs: Number(values.linger),
        workerBatch: workerBatch ?? 10,
        pollSeconds: pollSeconds ?? 0.5,
      },
      targets: { rate: TARGET_RATE, p99Ms: TARGET_P99_MS, recoveryMs: TARGET_RECOVERY_MS },
      openLoop: openLoops,
      crash: crashes,
      verdicts,
    }),
  )
  process.exit(0)
}

switch (values.role) {
  case "producer":
    await producer()
    break
  case "crash-worker":
    await crashWorker()
    break
  case "embedded":
    await embeddedServer()
    break
  default:
    await main()
}
