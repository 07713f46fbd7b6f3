import { createHash, randomUUID } from "node:crypto"
import { Cause, Context, Effect, Exit, Layer, Metric, Redacted, Schedule, Schema, Semaphore } from "effect"
import type { JobInsert, PgBoss } from "pg-boss"
import * as Backoff from "./Backoff.ts"
import { assertIdentifier } from "./Db.ts"
import { ErrorBus } from "./ErrorBus.ts"
import { register } from "./Health.ts"

// Durable jobs on pg-boss (https://github.com/timgit/pg-boss), in a schema of the function's own (`<schema>_jobs`).
// Why pg-boss and not graphile-worker, measured on this machine (docs/jobs.md): a killed worker's job runs again
// after its heartbeat lapses (graphile-worker holds it 4 h), retries back off exponentially with a cap and jitter and
// end in a dead-letter queue (graphile-worker: fixed e^n backoff, no dead letters), and one installation per schema
// stays apart (graphile-worker's NOTIFY channels are global: installing it in one schema stopped another's workers).

/** How a failing job is retried: `limit` retries after the first run, waits doubling from `delaySeconds` with jitter, each at most `maxDelaySeconds`. */
export interface RetryPolicy {
  readonly limit: number
  readonly delaySeconds: number
  readonly maxDelaySeconds: number
}

/** Five retries, from 2 s doubling with jitter, each wait at most 5 minutes. */
export const defaultRetry: RetryPolicy = { limit: 5, delaySeconds: 2, maxDelaySeconds: 300 }

/** What a handler is told about the run it is in. */
export interface Run {
  readonly id: string
  /** 1 for the first run, then one more per retry. */
  readonly attempt: number
  /** When it was due: its cron tick or run-at time (the retry's own time after a failure). */
  readonly due: Date
}

/**
 * A job a function declares in its app definition: on a cron schedule (UTC; each tick runs once across every
 * instance) or on demand (`Jobs.enqueue`). Execution is at least once (a run cut short by a crash runs again), so a
 * handler's effects must be idempotent: keyed writes, `ON CONFLICT`, a state check before acting.
 */
export interface JobSpec<R = never> {
  /** A cron expression, evaluated in UTC; none: the job runs only when enqueued. */
  readonly schedule?: string
  /** After downtime, run once for the most recent tick missed (default: skip missed ticks). */
  readonly catchUp?: boolean
  readonly retry?: Partial<RetryPolicy>
  /** How long one run may take before it counts as failed (default 15 minutes). */
  readonly timeoutSeconds?: number
  readonly handler: (data: unknown, run: Run) => Effect.Effect<void, unknown, R>
}

/** A job on a cron schedule (UTC). */
export const cron = <R>(
  schedule: string,
  handler: JobSpec<R>["handler"],
  options: Omit<JobSpec<R>, "schedule" | "handler"> = {},
): JobSpec<R> => ({ ...options, schedule, handler })

/** A job that runs when enqueued (`Jobs.enqueue`). */
export const onDemand = <R>(
  handler: JobSpec<R>["handler"],
  options: Omit<JobSpec<R>, "schedule" | "handler" | "catchUp"> = {},
): JobSpec<R> => ({ ...options, handler })

/** A function's jobs by name (`[a-z0-9-]+`). */
export type JobSpecs<R = never> = Readonly<Record<string, JobSpec<R>>>

/** The job store could not be reached or refused a request. */
export class JobsError extends Schema.TaggedError<JobsError>()("JobsError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** A job that failed its last attempt, as the dead-letter queue keeps it. */
export interface DeadLetter {
  readonly id: string
  readonly job: string
  readonly data: unknown
  readonly error: unknown
  readonly attempts: number
  readonly failedAt: Date
}

/** Enqueueing and inspecting a function's declared jobs. */
export class Jobs extends Context.Service<
  Jobs,
  {
    /**
     * Enqueues a declared on-demand job to run now or at `runAt`. With `key`, the job is enqueued once per key (its
     * id is derived from the key): enqueueing the same key again, even after it ran, is a no-op. Returns the job id.
     */
    enqueue(
      name: string,
      data: unknown,
      options?: { readonly key?: string; readonly runAt?: Date },
    ): Effect.Effect<string, JobsError>
    /**
     * Enqueues many runs of a declared on-demand job in one INSERT (a producer's batch: one round trip, not one per
     * job), each as `enqueue` would: with `key`, once per key, also within the call. Returns their ids, in order.
     */
    enqueueMany(
      name: string,
      items: ReadonlyArray<{ readonly data: unknown; readonly key?: string; readonly runAt?: Date }>,
    ): Effect.Effect<ReadonlyArray<string>, JobsError>
    /** Jobs of `name` that failed their last attempt, newest first (the admin listing). */
    deadLetters(name: string, limit?: number): Effect.Effect<ReadonlyArray<DeadLetter>, JobsError>
  }
>()("shared/Jobs") {}

// Asking for a job the function does not declare is a defect of the caller, not something to enqueue.
const undeclared = (service: string, name: string) => Effect.die(new Error(`job ${name} is not declared by ${service}`))

/** The jobs of a function that declares none: enqueueing any is a defect. */
export const none = (service: string): Layer.Layer<Jobs> => {
  const refuse = (name: string) => undeclared(service, name)
  return Layer.succeed(Jobs, Jobs.of({ enqueue: refuse, enqueueMany: refuse, deadLetters: refuse }))
}

/** How the kernel runs a function's jobs. */
export interface JobsOptions<R> {
  readonly service: string
  readonly url: Redacted.Redacted<string>
  /** The function's schema; the jobs live in `<schema>_jobs`. */
  readonly schema: string
  readonly jobs: JobSpecs<R>
  /** How often an idle worker asks for due jobs (seconds, ≥ 0.5): the bound on due → started when idle. */
  readonly pollSeconds?: number
  /** Heartbeat of a running job (seconds, ≥ 10): a run whose worker stops beating is retried after about this long. */
  readonly heartbeatSeconds?: number
  /** How often the supervisor looks for lapsed heartbeats and the cron ticks due (seconds). */
  readonly superviseSeconds?: number
  /** Jobs fetched per poll. */
  readonly batchSize?: number
  /** How long a stop waits for running jobs before leaving them to be retried (ms). */
  readonly shutdownTimeoutMs?: number
  /** False: enqueue only, no workers, schedules or supervision (a Lambda invocation, frozen between calls). */
  readonly work?: boolean
  /**
   * True: only read (the operator's dead-letter listing beside live instances): no worker, no pg-boss migration, no
   * queue created or changed. The store must exist.
   */
  readonly readOnly?: boolean
}

const JOB_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/
const deadQueue = (name: string) => `${name}.dead`

// A job's id from its deduplication key: a name-based (version 5) UUID, so the same key is always the same job.
const NAMESPACE = Buffer.from("6f0b3a3e4c8a4f6e9d2b7c1a5e9f0d13", "hex")
export const idOfKey = (job: string, key: string): string => {
  const hash = createHash("sha1").update(NAMESPACE).update(`${job}\u0000${key}`).digest()
  hash[6] = (hash[6]! & 0x0f) | 0x50
  hash[8] = (hash[8]! & 0x3f) | 0x80
  const hex = hash.subarray(0, 16).toString("hex")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

const lag = Metric.histogram("jobs_lag_seconds", {
  description: "Due to started, per job",
  boundaries: Metric.boundariesFromIterable([0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]),
})
const runs = Metric.counter("jobs_runs_total", { description: "Job runs by outcome", incremental: true })
const depth = Metric.gauge("jobs_queue_depth", { description: "Jobs waiting, by job and state" })
const deadLettered = Metric.gauge("jobs_dead_letters", { description: "Jobs that failed their last attempt, by job" })

const jobsError = (message: string) => (cause: unknown) => new JobsError({ message, cause })

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * Runs a function's declared jobs: installs pg-boss in `<schema>_jobs` (its own migrations, under its own lock), a
 * queue and a dead-letter queue per job, the cron schedules (UTC; ticks deduplicated across instances by pg-boss's
 * schedule table), and a worker per job. A container starts them in the background (HTTP does not wait; an enqueue
 * waits for the same start); an enqueue-only process when it first enqueues. Registers the "jobs" readiness check
 * (not critical) and keeps the queue gauges current.
 */
export const layer = <R>(options: JobsOptions<R>): Layer.Layer<Jobs, JobsError, R> =>
  Layer.effect(
    Jobs,
    Effect.gen(function* () {
      const names = Object.keys(options.jobs)
      const readOnly = options.readOnly ?? false
      const work = (options.work ?? true) && !readOnly
      for (const name of names) {
        if (!JOB_NAME.test(name)) return yield* Effect.die(new Error(`job name ${name} must match ${JOB_NAME}`))
      }
      const jobsSchema = assertIdentifier(`${options.schema}_jobs`)
      const context = yield* Effect.context<R>()
      const pollSeconds = options.pollSeconds ?? 0.5
      const superviseSeconds = options.superviseSeconds ?? 5
      // Work started from pg-boss's callbacks runs with the layer's context: its logger, tracer and metric registry.
      const inContext = (effect: Effect.Effect<unknown, never, R>) =>
        void Effect.runFork(Effect.provideContext(effect, context))
      const call = <A>(message: string, f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: jobsError(message) })
      const retryOf = (name: string) => ({ ...defaultRetry, ...options.jobs[name]!.retry })

      // The store: pg-boss loaded and started (its own migrations, under its own lock) with a queue and a dead-letter
      // queue per job. Made once, by whatever needs it first: a container's workers, started in the background so
      // that HTTP does not wait for them, or the first enqueue (an enqueue-only Lambda invocation may never need it).
      // A failed attempt is undone and leaves the next caller to try again.
      const boot = Effect.gen(function* () {
        const { PgBoss } = yield* Effect.promise(() => import("pg-boss"))
        const boss: PgBoss = new PgBoss({
          connectionString: Redacted.value(options.url),
          schema: jobsSchema,
          application_name: `${options.service}-jobs`,
          max: 4,
          // The embedded PGlite server delivers no NOTIFY to other sessions: every worker polls (pollSeconds).
          useListenNotify: false,
          schedule: work && names.some((name) => options.jobs[name]!.schedule !== undefined),
          supervise: work,
          // A listing changes nothing: no pg-boss migration, no schema (the caller checks that one exists).
          ...(readOnly ? { migrate: false, createSchema: false } : {}),
          superviseIntervalSeconds: superviseSeconds,
          monitorIntervalSeconds: superviseSeconds,
          cronWorkerIntervalSeconds: superviseSeconds,
          cronMonitorIntervalSeconds: superviseSeconds,
          openTelemetry: { enabled: false },
        })
        boss.on("error", (error) => inContext(Effect.logWarning("job store error", { error: messageOf(error) })))
        const install = Effect.gen(function* () {
          yield* call("the job store did not start", () => boss.start())
          if (readOnly) return
          for (const name of names) {
            const retry = retryOf(name)
            const queue = {
              retryLimit: retry.limit,
              retryDelay: retry.delaySeconds,
              retryBackoff: true,
              retryDelayMax: retry.maxDelaySeconds,
              heartbeatSeconds: options.heartbeatSeconds ?? 10,
              expireInSeconds: options.jobs[name]!.timeoutSeconds ?? 900,
              deadLetter: deadQueue(name),
            }
            yield* call(`the dead-letter queue of ${name} could not be made`, async () => {
              if (!(await boss.getQueue(deadQueue(name))))
                await boss.createQueue(deadQueue(name), { retentionSeconds: 30 * 86_400 })
            })
            yield* call(`the queue of ${name} could not be made`, async () => {
              if (await boss.getQueue(name)) await boss.updateQueue(name, queue)
              else await boss.createQueue(name, queue)
            })
          }
        })
        // Not cut short (a readiness deadline, a closing scope): an abandoned start would leave a running store
        // behind with its pool and timers; a failed one is stopped.
        yield* install.pipe(
          Effect.onExit((exit) =>
            Exit.isSuccess(exit) ? Effect.void : Effect.promise(() => boss.stop({ graceful: false }).catch(() => {})),
          ),
          Effect.uninterruptible,
        )
        return boss
      })
      let store: PgBoss | undefined
      const booting = Semaphore.makeUnsafe(1)
      const ensure: Effect.Effect<PgBoss, JobsError> = booting.withPermits(1)(
        Effect.suspend(() =>
          store !== undefined
            ? Effect.succeed(store)
            : Effect.tap(boot, (boss) =>
                Effect.sync(() => {
                  store = boss
                }),
              ).pipe(Effect.uninterruptible),
        ),
      )
      yield* Effect.addFinalizer(() =>
        store === undefined
          ? Effect.void
          : Effect.promise(() =>
              store!.stop({ graceful: true, timeout: options.shutdownTimeoutMs ?? 10_000 }).catch(() => {}),
            ),
      )

      // A container's workers and schedules, once the store is up (each job's once, though a failed start is retried).
      const working = new Set<string>()
      const startWorkers = (boss: PgBoss) =>
        Effect.forEach(
          names.filter((name) => !working.has(name)),
          (name) => Effect.tap(startWorker(boss, name), () => Effect.sync(() => working.add(name))),
        )
      const startWorker = (boss: PgBoss, name: string) =>
        Effect.gen(function* () {
          const spec = options.jobs[name]!
          const retry = retryOf(name)
          if (spec.schedule !== undefined) {
            const schedule = spec.schedule
            yield* call(`the schedule of ${name} could not be set`, () =>
              boss.schedule(name, schedule, {}, { tz: "UTC", missed: spec.catchUp ? "once" : "skip" }),
            )
          } else {
            yield* call(`the schedule of ${name} could not be removed`, () => boss.unschedule(name))
          }

          const runOne = async (job: {
            readonly id: string
            readonly data: unknown
            readonly retryCount: number
            readonly startAfter: Date
          }) => {
            const attempt = job.retryCount + 1
            const due = job.startAfter
            const exit = await Effect.runPromiseExit(
              Effect.gen(function* () {
                yield* Metric.update(
                  Metric.withAttributes(lag, { job: name }),
                  Math.max(0, Date.now() - due.getTime()) / 1000,
                )
                yield* spec.handler(job.data, { id: job.id, attempt, due }).pipe(
                  // The last attempt's failure is reported here, inside the run's span (its trace and span ids), and
                  // logged as dead-lettered below.
                  Effect.tapCause((cause) =>
                    attempt > retry.limit && !Cause.hasInterruptsOnly(cause)
                      ? ErrorBus.use((errors) =>
                          errors.capture({
                            cause,
                            origin: "job",
                            route: `job:${name}`,
                            tags: { job: name, job_id: job.id },
                          }),
                        )
                      : Effect.void,
                  ),
                )
              }).pipe(
                Effect.withSpan(`job ${name}`, {
                  attributes: { "job.name": name, "job.id": job.id, "job.attempt": attempt },
                }),
                Effect.annotateLogs({ job: name, job_id: job.id, attempt }),
                Effect.provideContext(context),
              ),
            )
            if (Exit.isSuccess(exit)) {
              inContext(Metric.update(Metric.withAttributes(runs, { job: name, outcome: "completed" }), 1))
              return { id: job.id, status: "completed" as const }
            }
            const last = attempt > retry.limit
            const error = exit.cause.toString().slice(0, 2_000)
            inContext(
              Effect.gen(function* () {
                yield* Metric.update(
                  Metric.withAttributes(runs, { job: name, outcome: last ? "dead-lettered" : "failed" }),
                  1,
                )
                if (last) yield* Effect.logError("job failed its last attempt: dead-lettered", { error })
                else yield* Effect.logWarning("job failed, will retry", { error })
              }).pipe(Effect.annotateLogs({ job: name, job_id: job.id, attempt })),
            )
            return { id: job.id, status: "failed" as const, output: { error } }
          }

          yield* call(`the worker of ${name} could not start`, () =>
            boss.work(
              name,
              {
                batchSize: options.batchSize ?? 10,
                // A cron job's ticks are sent every superviseSeconds: polling its queue more often finds nothing.
                pollingIntervalSeconds:
                  spec.schedule === undefined ? pollSeconds : Math.max(pollSeconds, superviseSeconds),
                burstWhenBatchFull: true,
                includeMetadata: true,
                perJobResults: true,
              },
              (jobs) => Promise.all(jobs.map(runOne)),
            ),
          )
        })

      // Queue depth and dead letters for the gauges, and the readiness check: the job store answers.
      // Read from the store once started: asking must not start it (the background start does, with its backoff).
      const counts = Effect.suspend(() =>
        store === undefined
          ? Effect.fail(new JobsError({ message: "the job store has not started yet", cause: null }))
          : call("the job store did not answer", () => store!.getQueues([...names, ...names.map(deadQueue)])),
      )
      const gauges = Effect.flatMap(counts, (queues) =>
        Effect.forEach(
          queues,
          (q) =>
            q.name.endsWith(".dead")
              ? Metric.update(Metric.withAttributes(deadLettered, { job: q.name.slice(0, -5) }), q.queuedCount)
              : Effect.forEach(
                  [
                    ["ready", q.readyCount],
                    ["deferred", q.deferredCount],
                    ["active", q.activeCount],
                  ] as const,
                  ([state, n]) => Metric.update(Metric.withAttributes(depth, { job: q.name, state }), n),
                  { discard: true },
                ),
          { discard: true },
        ),
      )
      if (names.length > 0 && work) {
        // Started in the background, retried while the database cannot take it (it is logged each time): HTTP
        // listens meanwhile, and an enqueue waits for the same start.
        yield* Effect.flatMap(ensure, startWorkers).pipe(
          Effect.tapError((error) =>
            Effect.logWarning("the job store did not start, retrying", { error: error.message }),
          ),
          Effect.retry(Backoff.exponential({ base: "1 second", max: "30 seconds", jitter: true })),
          Effect.forkScoped,
        )
        yield* gauges.pipe(
          Effect.ignore,
          Effect.repeat(Schedule.spaced(`${superviseSeconds} seconds`)),
          Effect.forkScoped,
        )
        // Not critical: the function serves without its jobs (its database, which they live in, has its own check);
        // /readyz shows them degraded until the store answers.
        yield* register("jobs", counts, { critical: false })
      }

      // The store for a declared job; asking for another is a defect of the caller.
      const storeFor = (name: string) => (options.jobs[name] === undefined ? undeclared(options.service, name) : ensure)

      const enqueueMany = (
        name: string,
        items: ReadonlyArray<{ readonly data: unknown; readonly key?: string; readonly runAt?: Date }>,
      ) =>
        Effect.gen(function* () {
          if (readOnly)
            return yield* Effect.die(new Error(`the job store of ${options.service} was opened to read only`))
          const boss = yield* storeFor(name)
          // Ids are made here (from the key, else random), so each item's id is known though the INSERT skips what
          // it already holds (ON CONFLICT DO NOTHING: a key enqueued before); a key twice in the call is one job.
          const ids = items.map((item) => (item.key === undefined ? randomUUID() : idOfKey(name, item.key)))
          const unique = new Map<string, JobInsert>()
          items.forEach((item, i) => {
            const id = ids[i]!
            if (unique.has(id)) return
            unique.set(id, {
              id,
              data: (item.data ?? {}) as object,
              ...(item.runAt === undefined ? {} : { startAfter: item.runAt }),
            })
          })
          if (unique.size > 0) {
            yield* call(`jobs ${name} could not be enqueued`, () => boss.insert(name, [...unique.values()]))
          }
          return ids
        })

      return Jobs.of({
        // One job is a batch of one: the same id rules (from the key, else random) and the same INSERT.
        enqueue: (name, data, enqueueOptions) =>
          Effect.map(
            enqueueMany(name, [
              {
                data,
                ...(enqueueOptions?.key === undefined ? {} : { key: enqueueOptions.key }),
                ...(enqueueOptions?.runAt === undefined ? {} : { runAt: enqueueOptions.runAt }),
              },
            ]),
            (ids) => ids[0]!,
          ),
        enqueueMany,
        deadLetters: (name, limit = 100) =>
          Effect.gen(function* () {
            const boss = yield* storeFor(name)
            // The dead-letter queue holds a copy of each failed job; its last error stays on the original (kept for
            // the queue's retention), read for the newest `limit` of them.
            const found = yield* call(`the dead letters of ${name} could not be read`, () =>
              boss.findJobs(deadQueue(name), { limit: 100_000 }),
            )
            const newest = found.sort((a, b) => b.createdOn.getTime() - a.createdOn.getTime()).slice(0, limit)
            return yield* Effect.forEach(newest, (job) =>
              Effect.map(
                job.sourceId === null
                  ? Effect.succeed(undefined)
                  : call(`the failed run of ${name} could not be read`, () =>
                      boss.findJobs(name, { id: job.sourceId! }).then(([source]) => source),
                    ),
                (source): DeadLetter => ({
                  id: job.sourceId ?? job.id,
                  job: name,
                  data: job.data,
                  error: (source?.output as { error?: unknown } | undefined)?.error ?? null,
                  attempts: (job.sourceRetryCount ?? 0) + 1,
                  failedAt: job.createdOn,
                }),
              ),
            )
          }),
      })
    }),
  ) as Layer.Layer<Jobs, JobsError, R>
