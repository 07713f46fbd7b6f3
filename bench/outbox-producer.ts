// A producer process of bench/outbox.ts: a function instance's routes committing events, one per `Db.transaction`
// through `Outbox.publish`, with its own pool (`Kernel.database` + `Outbox.layer`, as a function builds them) and its
// own event loop, while the bench's parent process runs the relay and the consumer. Forked with an IPC channel:
//   parent → child: { t: "start", profile?: path } | { t: "grant", n } (n events may be committed; 0: stop) | { t: "stop" }
//   child → parent: { t: "ready" } | { t: "want", n, committed } | { t: "done", committed, unused }
// `committed` counts this process's commits since it started. Credit comes in small grants, so the parent's gate
// (a window of events committed but not consumed, or an offered rate) holds across processes.
import { mkdir, writeFile } from "node:fs/promises"
import { Session } from "node:inspector/promises"
import { dirname } from "node:path"
import { Context, Effect, Layer, Redacted, Scope } from "effect"
import { Db } from "../shared/Db.ts"
import * as Kernel from "../shared/Kernel.ts"
import * as Outbox from "../shared/Outbox.ts"

interface Config {
  readonly schema: string
  readonly type: string
  /** Fibers committing at once (a function instance's concurrent requests). */
  readonly workers: number
  /** Number of this process's first worker among all producers: subjects `k<worker>-<i>` stay unique. */
  readonly firstWorker: number
  readonly keysPerWorker: number
}

type FromParent =
  | { readonly t: "start"; readonly profile?: string }
  | { readonly t: "grant"; readonly n: number }
  | { readonly t: "stop" }

const config = JSON.parse(process.argv[2] ?? "{}") as Config
const databaseUrl = process.env.DATABASE_URL
if (!databaseUrl || !process.send) {
  console.error("bench/outbox-producer.ts is forked by bench/outbox.ts (DATABASE_URL set, IPC channel)")
  process.exit(1)
}
const send = (message: object) => process.send?.(message)
const now = () => performance.timeOrigin + performance.now()

const manifest = {
  name: config.schema,
  version: "0.0.0",
  migrations: [],
  events: { publishes: [config.type], consumes: [] },
}
// The parent has migrated the schema; the kernel's migration step finds nothing to apply.
const layer = Outbox.Outbox.layer(manifest).pipe(
  Layer.provideMerge(
    Kernel.database({
      service: config.schema,
      version: "0.0.0",
      logLevel: "warn",
      db: { url: Redacted.make(databaseUrl), schema: config.schema },
      migrations: [...Outbox.migrations],
    }),
  ),
  Layer.provideMerge(Kernel.base({ service: config.schema, version: "0.0.0", logLevel: "warn" })),
)
const scope = Scope.makeUnsafe()
const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
const db = Context.get(context, Db)
const outbox = Context.get(context, Outbox.Outbox)

// Credit granted and not used yet; a request for more is out while `asking`. `exhausted`: the gate granted nothing
// (a budget spent, or stopped), so the credit left is used and no more asked; `stopping`: stop now, credit unused.
let credit = 0
let asking = false
let exhausted = false
let stopping = false
let committed = 0
let wake: Array<() => void> = []
const wakeAll = () => {
  const waiting = wake
  wake = []
  for (const resume of waiting) resume()
}
const chunk = Math.max(4, config.workers * 2)
const ask = () => {
  if (asking || stopping || exhausted || credit >= config.workers) return
  asking = true
  send({ t: "want", n: chunk, committed })
}

const next = Array.from({ length: config.workers }, () => 0)
const worker = (i: number) =>
  Effect.gen(function* () {
    const w = config.firstWorker + i
    for (;;) {
      // Stopped: what credit is left goes back unused (the parent's gate counted it as issued).
      if (stopping) return
      if (credit === 0) {
        if (exhausted) return
        ask()
        yield* Effect.promise(() => new Promise<void>((resume) => wake.push(resume)))
        continue
      }
      credit--
      ask()
      const n = next[i]!++
      const subject = `k${w}-${n % config.keysPerWorker}`
      yield* db.transaction(outbox.publish({ type: config.type, subject, data: { w, n, t: now() } }))
      committed++
    }
  })

const run = async (profile: string | undefined) => {
  stopping = false
  exhausted = false
  const workers = () =>
    Effect.runPromise(
      Effect.forEach(
        Array.from({ length: config.workers }, (_, i) => i),
        worker,
        { concurrency: "unbounded", discard: true },
      ),
    )
  if (profile === undefined) await workers()
  else {
    const session = new Session()
    session.connect()
    await session.post("Profiler.enable")
    await session.post("Profiler.start")
    await workers()
    const { profile: result } = await session.post("Profiler.stop")
    await mkdir(dirname(profile), { recursive: true })
    await writeFile(profile, JSON.stringify(result))
    session.disconnect()
  }
  send({ t: "done", committed, unused: credit })
  credit = 0
}

process.on("message", (message: FromParent) => {
  switch (message.t) {
    case "start":
      void run(message.profile)
      return
    case "grant":
      asking = false
      if (message.n === 0) exhausted = true
      credit += message.n
      wakeAll()
      return
    case "stop":
      stopping = true
      wakeAll()
      return
  }
})
process.on("disconnect", () => process.exit(0))
send({ t: "ready" })
