// The event path, producer commit to consumer handler, three ways in one run:
//   outbox+kafka: `Outbox.publish` inside `Db.transaction` (one event per transaction, as a route does) → the outbox
//                 relay → the Kafka broker of .env.test → a subscription through the kernel's KafkaEventBus (an inbox
//                 transaction per fetched batch), all from `Kernel.events` with the default settings functions run with;
//   bare kafka:   a plain kafkajs producer sending the same envelopes (batches of 100, acks -1) to another topic and a
//                 plain kafkajs consumer (eachMessage, auto-commit) reading them: no database (the baseline);
//   pg bus:       the same commits read by the embedded Postgres-backed bus (PgEventBus, no relay, no broker).
// The commits come from `--producer-procs` child processes (bench/outbox-producer.ts), each with `--producers` fibers
// and a pool of its own, as in production, where the routes that publish run in other processes than the relay and
// the consumer; this process runs the relay and the consumer as a function runs them (`Kernel.events`) and hands the
// children credit. `--producer-procs 0` commits from fibers in this process instead (how it was measured before
// 2026-12-03's second run: the commits then shared one event loop with the relay and the consumer).
// Per path: a throughput phase (producers flat out, at most `--window` events committed but not yet consumed; rate
// consumed over `--seconds` after `--warmup`), then a latency phase (open loop at min(5000/s, 0.8 × that path's
// throughput) for `--latency-seconds`). Latency: a wall-clock timestamp put in the event's data as it is written
// (inside the transaction, just before COMMIT; bare: just before the send) to the handler's call. At the end every
// event is checked consumed exactly once and in order per key. Prints tables and, last, one JSON line; never asserts.
//   node bench/outbox.ts [--seconds 20] [--warmup 5] [--latency-seconds 10] [--latency-rate N] [--producers 16]
//     [--producer-procs 2] [--window 5000] [--keys 8] [--paths bare,outbox-kafka,pg-bus] [--stages N [--profile DIR] [--together]]
import { type ChildProcess, fork } from "node:child_process"
import { randomBytes } from "node:crypto"
import { parseArgs } from "node:util"
import { Context, Effect, Exit, Layer, Option, Redacted, Scope } from "effect"
import kafkajs from "kafkajs"
import * as CloudEvent from "../shared/CloudEvent.ts"
import { Db } from "../shared/Db.ts"
import { EventBus } from "../shared/EventBus.ts"
import type { Health } from "../shared/Health.ts"
import * as Kernel from "../shared/Kernel.ts"
import type { ModuleManifest } from "../shared/Module.ts"
import * as Outbox from "../shared/Outbox.ts"
import * as PgEventBus from "../shared/PgEventBus.ts"
import { profiled, quantile } from "./lib.ts"

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "20" },
    warmup: { type: "string", default: "5" },
    "latency-seconds": { type: "string", default: "10" },
    producers: { type: "string", default: "16" },
    "producer-procs": { type: "string", default: "2" },
    window: { type: "string", default: "5000" },
    keys: { type: "string", default: "8" },
    paths: { type: "string", default: "bare,outbox-kafka,pg-bus" },
    stages: { type: "string", default: "0" },
    together: { type: "boolean", default: false },
    profile: { type: "string" },
    "latency-rate": { type: "string" },
  },
})
const seconds = Number(values.seconds)
const warmup = Number(values.warmup)
const latencySeconds = Number(values["latency-seconds"])
const producers = Number(values.producers)
const producerProcs = Number(values["producer-procs"])
const window = Number(values.window)
const keysPerProducer = Number(values.keys)
const paths = values.paths.split(",")
const stagesCount = Number(values.stages)
const together = values.together
const profileDir = values.profile

const TARGET_RATE = 5_000
const TARGET_P99_MS = 250
const TARGET_RATIO = 0.5
const BARE_BATCH = 100

const databaseUrl = process.env.DATABASE_URL
const brokers = process.env.KAFKA_BROKERS?.split(",")
if (!databaseUrl || !brokers) {
  console.error("DATABASE_URL and KAFKA_BROKERS must be set: set -a; . ./.env.test; set +a")
  process.exit(1)
}

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** What the handlers record: counts, duplicates, order per key, and latencies while a phase's window is open. */
class Sink {
  consumed = 0
  firstAt = 0
  lastAt = 0
  duplicates = 0
  outOfOrder = 0
  recording = false
  readonly latencies: Array<number> = []
  readonly seen = new Set<string>()
  readonly lastByKey = new Map<string, number>()
  record(id: string, key: string, n: number, t: number) {
    if (this.seen.has(id)) {
      this.duplicates++
      return
    }
    this.seen.add(id)
    this.consumed++
    this.lastAt = now()
    if (this.firstAt === 0) this.firstAt = this.lastAt
    const last = this.lastByKey.get(key)
    if (last !== undefined && n <= last) this.outOfOrder++
    this.lastByKey.set(key, n)
    if (this.recording) this.latencies.push(now() - t)
  }
}

/** When producers may produce: closed loop (at most `window` outstanding) or open loop (a fixed rate). */
class Gate {
  issued = 0
  committed = 0
  stopped = false
  private mode:
    | { readonly _tag: "closed" }
    | { readonly _tag: "open"; readonly rate: number; readonly since: number }
    | { readonly _tag: "budget"; readonly until: number } = { _tag: "closed" }
  private readonly sink: Sink
  constructor(sink: Sink) {
    this.sink = sink
  }
  closedLoop() {
    this.stopped = false
    this.mode = { _tag: "closed" }
  }
  openLoop(rate: number) {
    this.stopped = false
    this.mode = { _tag: "open", rate, since: now() - (this.issued / rate) * 1000 }
  }
  /** Credit granted but not used (a producer process stopped with some left): it was never issued after all. */
  giveBack(count: number) {
    this.issued -= count
  }
  /** Exactly `count` more events, as fast as the producers go, consumed or not. */
  budget(count: number) {
    this.stopped = false
    this.mode = { _tag: "budget", until: this.issued + count }
  }
  /** Grants up to `max` events (at least 1), or 0 once stopped. */
  async take(max: number): Promise<number> {
    for (;;) {
      if (this.stopped) return 0
      if (this.mode._tag === "budget" && this.issued >= this.mode.until) return 0
      const available =
        this.mode._tag === "closed"
          ? window - (this.issued - this.sink.consumed)
          : this.mode._tag === "budget"
            ? this.mode.until - this.issued
            : Math.floor(((now() - this.mode.since) / 1000) * this.mode.rate) - this.issued
      if (available > 0) {
        const granted = Math.min(available, max)
        this.issued += granted
        return granted
      }
      await sleep(1)
    }
  }
}

interface PhaseResult {
  readonly rate: number
  readonly committedRate: number
  readonly consumedRate: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly backlogAtEnd: number
}

interface PathResult {
  readonly throughput: PhaseResult
  readonly latency: PhaseResult & { readonly offered: number }
  readonly produced: number
  readonly consumedOnce: number
  readonly duplicates: number
  readonly missing: number
  readonly outOfOrder: number
  readonly extra: Record<string, number>
}

/** One path: starts its producers against the gate; stop the gate and await the promise to stop them. */
interface Running {
  readonly sink: Sink
  readonly gate: Gate
  /** Produces until the gate stops; `profile`: the CPU profile file to write of the committing process(es). */
  produce(profile?: string): Promise<void>
  /** Starts the consumer. */
  subscribe(): Promise<void>
  /** Outbox rows the relay has not published yet (outbox+kafka only). */
  unpublished?: () => Promise<number>
  /** Starts the producer's event side (the relay), if not yet started. */
  startRelay?: () => Promise<void>
  /** Extra counts read after draining (inbox rows, unpublished outbox rows). */
  verify(): Promise<Record<string, number>>
  close(): Promise<void>
}

const drain = async (r: Running, what: string) => {
  const deadline = Date.now() + 120_000
  while (r.sink.consumed < r.gate.committed) {
    if (Date.now() > deadline) {
      console.error(`${what}: ${r.gate.committed - r.sink.consumed} events not consumed after 120 s`)
      return
    }
    await sleep(20)
  }
}

const phase = async (r: Running, what: string, warm: number, secs: number): Promise<PhaseResult> => {
  const producing = r.produce()
  await sleep(warm * 1000)
  r.sink.latencies.length = 0
  r.sink.recording = true
  const [c0, p0, t0] = [r.sink.consumed, r.gate.committed, now()]
  await sleep(secs * 1000)
  const [c1, p1, t1] = [r.sink.consumed, r.gate.committed, now()]
  r.sink.recording = false
  r.gate.stopped = true
  await producing
  const elapsed = (t1 - t0) / 1000
  const latencies = [...r.sink.latencies]
  await drain(r, what)
  return {
    rate: (c1 - c0) / elapsed,
    committedRate: (p1 - p0) / elapsed,
    consumedRate: (c1 - c0) / elapsed,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: latencies.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY),
    backlogAtEnd: p1 - c1,
  }
}

const measure = async (name: string, r: Running): Promise<PathResult> => {
  await r.subscribe()
  // Until the first events arrive (consumer group joined, topics created), nothing is measured.
  r.gate.closedLoop()
  const first = r.produce()
  const deadline = Date.now() + 60_000
  while (r.sink.consumed < 10 && Date.now() < deadline) await sleep(20)
  r.gate.stopped = true
  await first
  await drain(r, name)
  if (r.sink.consumed === 0) throw new Error(`${name}: nothing consumed within 60 s`)
  process.stderr.write(`${name}: throughput phase (${warmup} s warm-up, ${seconds} s)\n`)
  r.gate.closedLoop()
  const throughput = await phase(r, name, warmup, seconds)
  const offered =
    values["latency-rate"] !== undefined
      ? Number(values["latency-rate"])
      : Math.round(Math.min(TARGET_RATE, 0.8 * throughput.rate))
  process.stderr.write(`${name}: ${throughput.rate.toFixed(0)}/s; latency phase at ${offered}/s\n`)
  r.gate.openLoop(offered)
  const latency = await phase(r, name, 2, latencySeconds)
  const extra = await r.verify()
  const produced = r.gate.committed
  return {
    throughput,
    latency: { ...latency, offered },
    produced,
    consumedOnce: r.sink.consumed,
    duplicates: r.sink.duplicates,
    missing: produced - r.sink.consumed,
    outOfOrder: r.sink.outOfOrder,
    extra,
  }
}

// ------------------------------------------------------------------------------------------------ kernel paths

const hex = randomBytes(4).toString("hex")
const dbOptions = (schema: string) => ({ url: Redacted.make(databaseUrl), schema })

const manifests = (tag: string) => {
  const producer = `bench_ob_${tag}_${hex}`
  const type = `${producer}.tick.created`
  const base = { version: "0.0.0", migrations: [] }
  return {
    producer: { ...base, name: producer, events: { publishes: [type], consumes: [] } },
    consumer: { ...base, name: `bench_oc_${tag}_${hex}`, events: { publishes: [], consumes: [type] } },
    topic: CloudEvent.topicOf(producer),
    type,
  }
}

/** A function's database and outbox as `Kernel` builds them (migrations, Health); its event side comes after. */
const foundationLayer = (manifest: Pick<ModuleManifest, "name" | "events">) =>
  Outbox.Outbox.layer(manifest).pipe(
    Layer.provideMerge(
      Kernel.database({
        service: manifest.name,
        version: "0.0.0",
        logLevel: "warn",
        db: dbOptions(manifest.name),
        migrations: [...Outbox.migrations, ...PgEventBus.migrations],
      }),
    ),
    Layer.provideMerge(Kernel.base({ service: manifest.name, version: "0.0.0", logLevel: "warn" })),
  )

const startKernelPath = async (tag: string, kafka: boolean): Promise<Running> => {
  const m = manifests(tag)
  const scope = Scope.makeUnsafe()
  const build = <A, E>(layer: Layer.Layer<A, E>) => Effect.runPromise(Layer.buildWithScope(layer, scope))
  // The consumer first: it creates its group before the relay starts (either way it reads from the beginning).
  const withEvents = async <A extends Db | Health>(
    manifest: Pick<ModuleManifest, "name" | "events">,
    base: Context.Context<A>,
  ): Promise<Context.Context<A | EventBus>> =>
    Context.merge(
      base,
      await build(
        Kernel.events(manifest, { kafkaBrokers: kafka ? Option.some(brokers) : Option.none() }).pipe(
          Layer.provide(Layer.succeedContext(base as Context.Context<Db | Health>)),
        ),
      ),
    )
  const consumer = await withEvents(m.consumer, await build(foundationLayer(m.consumer)))
  // The producer's event side (with Kafka: the outbox relay) starts at once, or in stages mode after the commits.
  const producer = await build(foundationLayer(m.producer))
  let relayStarted = false
  const startRelay = async () => {
    if (relayStarted) return
    relayStarted = true
    await withEvents(m.producer, producer)
  }
  if (stagesCount === 0) await startRelay()
  const sink = new Sink()
  const gate = new Gate(sink)
  const subscribe = () =>
    Effect.runPromise(
      Effect.flatMap(Effect.service(EventBus), (bus) =>
        bus.subscribe({
          topic: m.topic,
          group: m.consumer.name,
          types: [m.type],
          handler: (event) =>
            Effect.sync(() => {
              const data = event.data as { n: number; t: number }
              sink.record(event.id, event.subject ?? "", data.n, data.t)
            }),
        }),
      ).pipe(Effect.provideContext(Context.add(consumer, Scope.Scope, scope))),
    )

  const children = producerProcs > 0 ? await startProducerProcs(m, gate) : undefined
  const db = Context.get(producer, Db)
  const outbox = Context.get(producer, Outbox.Outbox)
  const next = Array.from({ length: producers }, () => 0)
  const worker = (w: number) =>
    Effect.gen(function* () {
      for (;;) {
        if ((yield* Effect.promise(() => gate.take(1))) === 0) return
        const n = next[w]!++
        const subject = `k${w}-${n % keysPerProducer}`
        yield* db.transaction(outbox.publish({ type: m.type, subject, data: { w, n, t: now() } }))
        gate.committed++
      }
    })
  const consumerDb = Context.get(consumer, Db)
  const count = (sql: string) =>
    Effect.runPromise(Effect.map(consumerDb.query<{ n: number }>(sql), ([row]) => row?.n ?? 0))
  return {
    sink,
    gate,
    subscribe,
    startRelay,
    ...(kafka
      ? {
          unpublished: () =>
            count(`SELECT count(*)::int AS n FROM ${m.producer.name}.outbox WHERE published_at IS NULL`),
        }
      : {}),
    produce: (profile) =>
      children?.produce(profile) ??
      Effect.runPromise(
        Effect.forEach(
          Array.from({ length: producers }, (_, w) => w),
          worker,
          { concurrency: "unbounded", discard: true },
        ),
      ),
    verify: async () => ({
      inboxRows: await count(`SELECT count(*)::int AS n FROM ${m.consumer.name}.inbox`),
      ...(kafka
        ? {
            unpublished: await count(
              `SELECT count(*)::int AS n FROM ${m.producer.name}.outbox WHERE published_at IS NULL`,
            ),
          }
        : {}),
    }),
    close: async () => {
      children?.close()
      await Effect.runPromise(Scope.close(scope, Exit.void))
      for (const schema of [m.producer.name, m.consumer.name]) {
        await dropSchema(schema)
      }
      if (kafka) await deleteTopics([m.topic, CloudEvent.dlqOf(m.topic)])
    },
  }
}

/**
 * `--producer-procs` child processes committing a path's events (bench/outbox-producer.ts), each with `--producers`
 * fibers; they ask for credit in small grants, which the gate gives as it would to fibers here, and report their
 * commits with each request and when they stop.
 */
const startProducerProcs = async (m: ReturnType<typeof manifests>, gate: Gate) => {
  type FromChild =
    | { readonly t: "ready" }
    | { readonly t: "want"; readonly n: number; readonly committed: number }
    | { readonly t: "done"; readonly committed: number; readonly unused: number }
  const reported = Array.from({ length: producerProcs }, () => 0)
  const report = (p: number, committed: number) => {
    gate.committed += committed - reported[p]!
    reported[p] = committed
  }
  let stopped: Array<() => void> = []
  let closing = false
  const children = await Promise.all(
    Array.from(
      { length: producerProcs },
      (_, p) =>
        new Promise<ChildProcess>((resolve, reject) => {
          const config = {
            schema: m.producer.name,
            type: m.type,
            workers: producers,
            firstWorker: p * producers,
            keysPerWorker: keysPerProducer,
          }
          const child = fork(new URL("./outbox-producer.ts", import.meta.url), [JSON.stringify(config)], {
            stdio: ["ignore", "inherit", "inherit", "ipc"],
          })
          child.on("exit", (code) => {
            if (closing) return
            console.error(`producer process ${p} exited (${code})`)
            reject(new Error(`producer process ${p} exited`))
            process.exit(1)
          })
          child.on("message", (message: FromChild) => {
            switch (message.t) {
              case "ready":
                resolve(child)
                return
              case "want":
                report(p, message.committed)
                void gate.take(message.n).then((n) => child.connected && child.send({ t: "grant", n }))
                return
              case "done":
                report(p, message.committed)
                gate.giveBack(message.unused)
                stopped[p]?.()
                return
            }
          })
        }),
    ),
  )
  return {
    produce: async (profile?: string) => {
      const done = children.map((_, p) => new Promise<void>((resolve) => (stopped[p] = resolve)))
      for (const [p, child] of children.entries()) {
        child.send({ t: "start", ...(profile === undefined ? {} : { profile: `${profile}-proc${p}.cpuprofile` }) })
      }
      // A child holding credit asks again only when it runs low: tell it at once when the gate stops.
      const watch = setInterval(() => {
        if (gate.stopped) for (const child of children) child.send({ t: "stop" })
      }, 5)
      await Promise.all(done)
      clearInterval(watch)
      stopped = []
    },
    close: () => {
      closing = true
      for (const child of children) child.disconnect()
    },
  }
}

// ------------------------------------------------------------------------------------------------ bare kafkajs

const client = new kafkajs.Kafka({ brokers, clientId: "bench-bare", logLevel: kafkajs.logLevel.WARN })

const deleteTopics = async (topics: Array<string>) => {
  const admin = client.admin()
  await admin.connect()
  try {
    const existing = new Set(await admin.listTopics())
    const present = topics.filter((t) => existing.has(t))
    if (present.length > 0) await admin.deleteTopics({ topics: present })
  } finally {
    await admin.disconnect()
  }
}

const dropSchema = async (schema: string) => {
  const pg = (await import("pg")).default
  const c = new pg.Client({ connectionString: databaseUrl })
  await c.connect()
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  } finally {
    await c.end()
  }
}

const startBare = async (): Promise<Running> => {
  const topic = `bench_bare_${hex}.events`
  const admin = client.admin()
  await admin.connect()
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 3 }] })
  await admin.disconnect()
  const sink = new Sink()
  const gate = new Gate(sink)
  const consumer = client.consumer({ groupId: `bench_bare_${hex}`, maxWaitTimeInMs: 1_000 })
  const subscribe = async () => {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ message }) => {
        const event = JSON.parse(message.value?.toString("utf8") ?? "null") as CloudEvent.CloudEvent
        const data = event.data as { n: number; t: number }
        sink.record(event.id, event.subject ?? "", data.n, data.t)
      },
    })
  }
  const producer = client.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner })
  await producer.connect()
  const source = `bench_bare_${hex}`
  let n = 0
  // The same envelope and headers as the relay sends (an outbox event of the same shape and size).
  const message = (): kafkajs.Message => {
    const k = n++
    const subject = `k${k % producers}-${Math.floor(k / producers) % keysPerProducer}`
    const event = CloudEvent.make({
      source,
      type: `${source}.tick.created`,
      subject,
      data: { actor: null, ip: null, requestId: null, target: subject, w: k % producers, n: k, t: now() },
    })
    return {
      key: subject,
      value: JSON.stringify(event),
      headers: { "content-type": "application/cloudevents+json", ce_id: event.id, ce_type: event.type },
    }
  }
  return {
    sink,
    gate,
    subscribe,
    produce: async () => {
      for (;;) {
        const granted = await gate.take(BARE_BATCH)
        if (granted === 0) return
        await producer.send({ topic, acks: -1, messages: Array.from({ length: granted }, message) })
        gate.committed += granted
      }
    },
    verify: async () => ({}),
    close: async () => {
      await consumer.disconnect()
      await producer.disconnect()
      await deleteTopics([topic])
    },
  }
}

// ------------------------------------------------------------------------------------------------ stages

/**
 * `--stages N`: each stage of a path alone, for finding where the time goes: N events committed (sent) with neither
 * relay nor consumer running; then the relay started on that backlog, timed until every row is published (its
 * topic creation at start included); then the consumer started on the full topic (outbox), timed from its first event
 * to its last. With `--profile DIR`, each stage under the CPU profiler.
 */
const stages = async (name: string, r: Running, count: number) => {
  if (together) return consumerSide(name, r, count)
  const t0 = now()
  r.gate.budget(count)
  if (producerProcs > 0 && profileDir !== undefined && name !== "bare") await r.produce(`${profileDir}/${name}-commit`)
  else await profiled(profileDir, `${name}-commit.cpuprofile`, () => r.produce())
  const committedAt = now()
  await r.startRelay?.()
  const relayStart = now()
  if (r.unpublished) {
    const unpublished = r.unpublished
    await profiled(profileDir, `${name}-relay.cpuprofile`, async () => {
      while ((await unpublished()) > 0) await sleep(10)
    })
  }
  const relayDone = now()
  await r.subscribe()
  const subscribedAt = now()
  await profiled(profileDir, `${name}-consume.cpuprofile`, () => drain(r, name))
  const result = {
    count,
    commitRate: count / ((committedAt - t0) / 1000),
    ...(r.unpublished ? { relayRate: count / ((relayDone - relayStart) / 1000) } : {}),
    consumerStartMs: r.sink.firstAt - subscribedAt,
    consumeRate: (r.sink.consumed - 1) / ((r.sink.lastAt - r.sink.firstAt) / 1000),
    consumedOnce: r.sink.consumed,
    duplicates: r.sink.duplicates,
    outOfOrder: r.sink.outOfOrder,
  }
  console.log(`${name} stages: ${JSON.stringify(result)}`)
  return result
}

/**
 * `--stages N --together`: the consumer side's most, as a function runs it: N events committed first, then the relay
 * (outbox+kafka) and the consumer running together on that backlog (the consumer's group joined first), timed from
 * the relay's start (pg bus: the subscription's) until the last event is handled.
 */
const consumerSide = async (name: string, r: Running, count: number) => {
  r.gate.budget(count)
  await r.produce()
  let t0 = now()
  await r.subscribe()
  if (r.unpublished) {
    // The consumer joins its group first (nothing to read yet), as it has long done in a running function.
    await sleep(5_000)
    t0 = now()
  }
  await r.startRelay?.()
  await profiled(profileDir, `${name}-relay+consume.cpuprofile`, () => drain(r, name))
  const result = {
    count: r.gate.committed,
    consumerSideRate: r.sink.consumed / ((r.sink.lastAt - t0) / 1000),
    consumedOnce: r.sink.consumed,
    duplicates: r.sink.duplicates,
    outOfOrder: r.sink.outOfOrder,
  }
  console.log(`${name} relay and consumer together: ${JSON.stringify(result)}`)
  return result
}

// ------------------------------------------------------------------------------------------------ run

const results: Record<string, PathResult> = {}
const starts: Record<string, () => Promise<Running>> = {
  bare: startBare,
  "outbox-kafka": () => startKernelPath("k", true),
  "pg-bus": () => startKernelPath("p", false),
}
for (const name of paths) {
  const start = starts[name]
  if (!start) throw new Error(`unknown path ${name}`)
  const running = await start()
  try {
    if (stagesCount > 0) {
      await stages(name, running, stagesCount)
      continue
    }
    results[name] = await measure(name, running)
  } finally {
    await running.close()
  }
}

if (stagesCount > 0) process.exit(0)
const fmt = (x: number | undefined, digits = 0) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(digits))
console.log(
  `event path, ${producerProcs > 0 ? `${producerProcs} producer processes × ${producers} fibers` : `${producers} producer fibers in this process`} (one event per transaction), window ${window}, ${seconds} s after ${warmup} s warm-up:`,
)
console.log(
  "path          events/s  committed/s  p50/p99 ms (at max)   latency phase: offered  p50 ms  p99 ms  max ms   once/dup/missing/order",
)
for (const [name, r] of Object.entries(results)) {
  console.log(
    [
      name.padEnd(12),
      fmt(r.throughput.rate).padStart(9),
      fmt(r.throughput.committedRate).padStart(12),
      `${fmt(r.throughput.p50, 1)} / ${fmt(r.throughput.p99, 1)}`.padStart(20),
      fmt(r.latency.offered).padStart(24),
      fmt(r.latency.p50, 1).padStart(7),
      fmt(r.latency.p99, 1).padStart(7),
      fmt(r.latency.max, 1).padStart(7),
      `   ${r.consumedOnce}/${r.duplicates}/${r.missing}/${r.outOfOrder}`,
      Object.keys(r.extra).length > 0 ? JSON.stringify(r.extra) : "",
    ].join(" "),
  )
}
const bare = results.bare?.throughput.rate
const verdicts: Record<string, unknown> = {}
for (const name of ["outbox-kafka", "pg-bus"]) {
  const r = results[name]
  if (!r) continue
  const ratio = bare ? r.throughput.rate / bare : undefined
  const exactlyOnce = r.missing === 0 && r.duplicates === 0 && r.outOfOrder === 0
  verdicts[name] = {
    ratioToBare: ratio,
    rateOk: r.throughput.rate >= TARGET_RATE,
    p99Ok: r.latency.p99 < TARGET_P99_MS,
    ratioOk: ratio === undefined ? undefined : ratio >= TARGET_RATIO,
    exactlyOnce,
  }
  console.log(
    `${name}: ${fmt(r.throughput.rate)}/s (target ≥ ${TARGET_RATE}: ${r.throughput.rate >= TARGET_RATE ? "ok" : "MISSED"}), ` +
      `p99 ${fmt(r.latency.p99, 1)} ms at ${r.latency.offered}/s (target < ${TARGET_P99_MS}: ${r.latency.p99 < TARGET_P99_MS ? "ok" : "MISSED"}), ` +
      `${ratio === undefined ? "no baseline" : `${ratio.toFixed(2)}× bare (target ≥ ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? "ok" : "MISSED"})`}, ` +
      `exactly once and in order: ${exactlyOnce ? "yes" : "NO"}`,
  )
}
console.log(
  JSON.stringify({
    bench: "outbox",
    seconds,
    warmup,
    latencySeconds,
    producers,
    producerProcs,
    window,
    targets: { rate: TARGET_RATE, p99Ms: TARGET_P99_MS, ratioToBare: TARGET_RATIO },
    results,
    verdicts,
  }),
)
process.exit(0)
