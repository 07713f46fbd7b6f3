// A worker process for shared/Jobs.test.ts: runs the "slow" job of schema JOBS_SCHEMA with a handler that never ends,
// enqueues one, and says "started" when its run begins (the test then kills this process with SIGKILL).
import { Effect, Layer, Redacted } from "effect"
import { Health } from "../Health.ts"
import * as Jobs from "../Jobs.ts"

const schema = process.env.JOBS_SCHEMA!
const layer = Jobs.layer({
  service: "test-worker",
  url: Redacted.make(process.env.DATABASE_URL!),
  schema,
  superviseSeconds: 2,
  jobs: {
    slow: Jobs.onDemand(() =>
      Effect.andThen(
        Effect.sync(() => process.stdout.write("started\n")),
        Effect.never,
      ),
    ),
  },
}).pipe(Layer.provide(Health.layer))

Effect.runFork(
  Effect.gen(function* () {
    const jobs = yield* Jobs.Jobs
    yield* jobs.enqueue("slow", { n: 1 }, { key: "the-one" })
    return yield* Effect.never
  }).pipe(Effect.provide(layer)),
)
