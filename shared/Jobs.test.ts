// Durable jobs (pg-boss) on the real Postgres and on the embedded PGlite server: on-demand runs with a deduplicating
// key and a run-at time, retries that back off and end in a visible dead letter, a cron tick run once by two
// instances, and a job whose worker is killed with SIGKILL run again by another instance within 30 s.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Context, Effect, Exit, Layer, Redacted, Scope } from "effect"
import { afterAll, describe, expect, it } from "vitest"
import { startEmbeddedPostgres } from "../infra/embedded/postgres.ts"
import { Health } from "./Health.ts"
import * as Jobs from "./Jobs.ts"
import { faultProxy } from "./testing/faultProxy.ts"
import { freshSchema, sql } from "./testing/harness.ts"
import { freePort } from "./testing/ports.ts"

const url = () => Redacted.make(process.env.DATABASE_URL!)

interface Started {
  readonly jobs: Jobs.Jobs["Service"]
  readonly close: () => Promise<void>
}

// One instance of a function's jobs, as the kernel runs them, until `close`.
const start = async (
  schema: string,
  jobs: Jobs.JobSpecs,
  options: Partial<Jobs.JobsOptions<never>> & { readonly url?: Redacted.Redacted<string> } = {},
): Promise<Started> => {
  const scope = Scope.makeUnsafe()
  const context = await Effect.runPromise(
    Layer.buildWithScope(
      Jobs.layer({ service: "test", url: url(), schema, jobs, superviseSeconds: 2, ...options }).pipe(
        Layer.provide(Health.layer),
      ),
      scope,
    ),
  )
  return {
    jobs: Context.get(context, Jobs.Jobs),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
  }
}

const until = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const dropJobs = (schema: string) => sql(`DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)

describe("Jobs (real Postgres)", () => {
  it("enqueue-only (a Lambda invocation): installs the store when it first enqueues, not at start", async () => {
    const schema = freshSchema("t_jobs_lazy").schema
    const ran: Array<unknown> = []
    const jobs = { later: Jobs.onDemand((data) => Effect.sync(() => void ran.push(data))) }
    const enqueuer = await start(schema, jobs, { work: false })
    try {
      const installed = async () =>
        (await sql("SELECT 1 FROM information_schema.schemata WHERE schema_name = $1", [`${schema}_jobs`])).length > 0
      expect(await installed()).toBe(false)
      await Effect.runPromise(enqueuer.jobs.enqueue("later", { n: 1 }))
      expect(await installed()).toBe(true)
      // A worker of the same function runs what was enqueued.
      const worker = await start(schema, jobs)
      try {
        await until("the enqueued job", () => ran.length === 1)
        expect(ran).toEqual([{ n: 1 }])
      } finally {
        await worker.close()
      }
    } finally {
      await enqueuer.close()
      await dropJobs(schema)
    }
  })

  it("a worker starts without its store and runs its jobs once the database takes it (HTTP would not wait)", async () => {
    const schema = freshSchema("t_jobs_late").schema
    const target = new URL(process.env.DATABASE_URL!)
    const proxy = await faultProxy({ host: target.hostname, port: Number(target.port) })
    await proxy.set("down")
    const ran: Array<unknown> = []
    const jobs = { later: Jobs.onDemand((data) => Effect.sync(() => void ran.push(data))) }
    // The layer is built while the database refuses connections: the store's start is retried in the background.
    const scope = Scope.makeUnsafe()
    const context = await Effect.runPromise(
      Layer.buildWithScope(
        Jobs.layer({ service: "test", url: Redacted.make(proxy.via(process.env.DATABASE_URL!)), schema, jobs }).pipe(
          Layer.provideMerge(Health.layer),
        ),
        scope,
      ),
    )
    try {
      const health = Context.get(context, Health)
      const before = await Effect.runPromise(health.readiness)
      expect(before.checks.jobs).toBe("degraded")
      await proxy.set("pass")
      const id = await Effect.runPromise(Context.get(context, Jobs.Jobs).enqueue("later", { n: 1 }))
      await until("the job enqueued once the store came up", () => ran.length === 1, 60_000)
      expect(ran).toEqual([{ n: 1 }])
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      expect((await Effect.runPromise(health.readiness)).checks.jobs).toBe("ok")
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await proxy.close()
      await dropJobs(schema)
    }
  }, 90_000)

  it("runs an on-demand job once per key, and not before its run-at time", async () => {
    const schema = freshSchema("t_jobs").schema
    const ran: Array<{ data: unknown; at: number; attempt: number }> = []
    const started = await start(schema, {
      "send-receipt": Jobs.onDemand((data, run) =>
        Effect.sync(() => void ran.push({ data, at: Date.now(), attempt: run.attempt })),
      ),
    })
    try {
      const first = await Effect.runPromise(started.jobs.enqueue("send-receipt", { order: 1 }, { key: "order-1" }))
      const again = await Effect.runPromise(started.jobs.enqueue("send-receipt", { order: 1 }, { key: "order-1" }))
      expect(again).toBe(first)
      await until("the keyed job", () => ran.length === 1)
      // Enqueued again with the same key after it ran: still once.
      await Effect.runPromise(started.jobs.enqueue("send-receipt", { order: 1 }, { key: "order-1" }))
      const runAt = new Date(Date.now() + 2_000)
      await Effect.runPromise(started.jobs.enqueue("send-receipt", { order: 2 }, { runAt }))
      await until("the timed job", () => ran.length === 2, 15_000)
      expect(ran.map((r) => r.data)).toEqual([{ order: 1 }, { order: 2 }])
      expect(ran[0]!.attempt).toBe(1)
      expect(ran[1]!.at).toBeGreaterThanOrEqual(runAt.getTime())
      // An undeclared job is a defect of the caller, not something to enqueue.
      await expect(Effect.runPromise(started.jobs.enqueue("nope", {}))).rejects.toThrow(/not declared/)
    } finally {
      await started.close()
      await dropJobs(schema)
    }
  }, 60_000)

  it("enqueues many in one call, each once per key as enqueue would (also a key twice in the call)", async () => {
    const schema = freshSchema("t_jobs").schema
    const ran: Array<unknown> = []
    const started = await start(schema, {
      "send-receipt": Jobs.onDemand((data) => Effect.sync(() => void ran.push(data))),
    })
    try {
      const before = await Effect.runPromise(started.jobs.enqueue("send-receipt", { order: 1 }, { key: "order-1" }))
      const ids = await Effect.runPromise(
        started.jobs.enqueueMany("send-receipt", [
          { data: { order: 1 }, key: "order-1" },
          { data: { order: 2 }, key: "order-2" },
          { data: { order: 2 }, key: "order-2" },
          { data: { order: 3 } },
          { data: { order: 4 }, runAt: new Date(Date.now() + 1_500) },
        ]),
      )
      expect(ids).toHaveLength(5)
      expect(ids[0]).toBe(before)
      expect(ids[2]).toBe(ids[1])
      expect(new Set(ids).size).toBe(4)
      await until("the batch", () => ran.length === 4, 15_000)
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect(ran).toHaveLength(4)
      expect(ran).toEqual(expect.arrayContaining([{ order: 1 }, { order: 2 }, { order: 3 }, { order: 4 }]))
      // The same keys again, after they ran: nothing more runs.
      await Effect.runPromise(started.jobs.enqueueMany("send-receipt", [{ data: { order: 2 }, key: "order-2" }]))
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect(ran).toHaveLength(4)
    } finally {
      await started.close()
      await dropJobs(schema)
    }
  }, 60_000)

  it("retries a failing job with growing waits, then dead-letters it where it can be listed", async () => {
    const schema = freshSchema("t_jobs").schema
    const attempts: Array<number> = []
    const started = await start(schema, {
      flaky: Jobs.onDemand(
        () =>
          Effect.suspend(() => {
            attempts.push(Date.now())
            return Effect.fail(new Error("the provider said no"))
          }),
        { retry: { limit: 2, delaySeconds: 1, maxDelaySeconds: 4 } },
      ),
    })
    try {
      const id = await Effect.runPromise(started.jobs.enqueue("flaky", { n: 1 }))
      await until("three attempts", () => attempts.length === 3, 30_000)
      await until(
        "the dead letter",
        async () => (await Effect.runPromise(started.jobs.deadLetters("flaky"))).length === 1,
        15_000,
      )
      const [dead] = await Effect.runPromise(started.jobs.deadLetters("flaky"))
      expect(dead).toMatchObject({ id, job: "flaky", data: { n: 1 }, attempts: 3 })
      expect(JSON.stringify(dead!.error)).toMatch(/the provider said no/)
      // Backoff: each wait at least the base delay (1 s doubling, with jitter); no fourth attempt.
      expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(900)
      expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(900)
      await new Promise((resolve) => setTimeout(resolve, 3_000))
      expect(attempts).toHaveLength(3)
    } finally {
      await started.close()
      await dropJobs(schema)
    }
  }, 60_000)

  it("runs a cron tick once across two instances (UTC minutes)", async () => {
    const schema = freshSchema("t_jobs").schema
    const ticks: Array<{ instance: string; at: Date; due: Date }> = []
    const job = (instance: string) => ({
      tick: Jobs.cron("* * * * *", (_data, run) =>
        Effect.sync(() => void ticks.push({ instance, at: new Date(), due: run.due })),
      ),
    })
    const one = await start(schema, job("one"))
    const two = await start(schema, job("two"))
    try {
      // The next minute boundary, then the supervisors' passes (every 2 s here) and a poll; then time for a second
      // run of the same tick, if there were one.
      await until("a tick", () => ticks.length >= 1, 90_000)
      await new Promise((resolve) => setTimeout(resolve, 10_000))
      const minute = (d: Date) => d.toISOString().slice(0, 16)
      const first = minute(ticks[0]!.at)
      expect(ticks.filter((t) => minute(t.at) === first)).toHaveLength(1)
    } finally {
      await one.close()
      await two.close()
      await dropJobs(schema)
    }
  }, 150_000)

  it("runs a job again within 30 s when the worker running it is killed with SIGKILL", async () => {
    const schema = freshSchema("t_jobs").schema
    const runs: Array<{ by: string; at: number }> = []
    // The first worker: another process, whose handler never ends.
    let child: ChildProcess | undefined
    let survivor: Started | undefined
    try {
      child = spawn(process.execPath, [join(import.meta.dirname, "testing", "jobsWorker.ts")], {
        env: { ...process.env, JOBS_SCHEMA: schema },
        stdio: ["ignore", "pipe", "inherit"],
      })
      let output = ""
      child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()))
      await until("the child's run", () => output.includes("started"), 20_000)
      await new Promise((resolve) => setTimeout(resolve, 3_000)) // mid-run, heartbeats sent
      const killed = Date.now()
      child.kill("SIGKILL")
      survivor = await start(schema, {
        slow: Jobs.onDemand((_data, run) =>
          Effect.sync(() => void runs.push({ by: `survivor:${run.attempt}`, at: Date.now() })),
        ),
      })
      await until("the run after the kill", () => runs.length === 1, 30_000)
      expect(runs[0]!.by).toBe("survivor:2")
      expect(runs[0]!.at - killed).toBeLessThan(30_000)
    } finally {
      child?.kill("SIGKILL")
      await survivor?.close()
      await dropJobs(schema)
    }
  }, 120_000)
})

describe("Jobs (the embedded PGlite server of npm start)", () => {
  const dir = mkdtempSync(join(tmpdir(), "jobs-pglite-"))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it("installs, runs an on-demand job once per key and a retry, by polling", async () => {
    const embedded = await startEmbeddedPostgres(join(dir, "data"), await freePort())
    const ran: Array<unknown> = []
    let failures = 0
    const started = await start(
      "t_embedded",
      {
        once: Jobs.onDemand((data) => Effect.sync(() => void ran.push(data))),
        again: Jobs.onDemand(
          (data) =>
            failures++ === 0 ? Effect.fail(new Error("first run fails")) : Effect.sync(() => void ran.push(data)),
          { retry: { limit: 1, delaySeconds: 1, maxDelaySeconds: 1 } },
        ),
      },
      { url: Redacted.make(embedded.url) },
    )
    try {
      await Effect.runPromise(started.jobs.enqueue("once", { n: 1 }, { key: "k" }))
      await Effect.runPromise(started.jobs.enqueue("once", { n: 1 }, { key: "k" }))
      await Effect.runPromise(started.jobs.enqueue("again", { n: 2 }))
      await until("both jobs", () => ran.length === 2, 30_000)
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      expect(ran).toEqual(expect.arrayContaining([{ n: 1 }, { n: 2 }]))
      expect(ran).toHaveLength(2)
      expect(failures).toBe(2)
    } finally {
      await started.close()
      await embedded.stop()
    }
  }, 90_000)
})
