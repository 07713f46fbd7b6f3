import { randomUUID } from "node:crypto"
import { Effect, Layer, Option, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Db } from "./Db.ts"
import { Idempotency } from "./Idempotency.ts"
import { kernelMigrations } from "./KernelMigrations.ts"
import { migrate } from "./Migrator.ts"
import { Conflict, ServiceUnavailable } from "./Problem.ts"
import { freshSchema, type Running, sql, start } from "./testing/harness.ts"

// Idempotency-Key around work that runs its own transactions (`Idempotency.claimed`, billing's payments): what a repeat
// gets after a success, during the first request, after a 503 part-way, after a refusal, and with another request, on
// the real Postgres.

const options = freshSchema("t_claim")
let running: Running<Idempotency | Db>
beforeAll(async () => {
  running = await start(
    Idempotency.layer.pipe(
      Layer.provideMerge(Layer.effectDiscard(migrate(kernelMigrations))),
      Layer.provideMerge(Db.layer(options)),
    ),
  )
}, 30_000)
afterAll(async () => {
  await running?.close()
  await sql(`DROP SCHEMA IF EXISTS ${options.schema} CASCADE`)
})

const Answer = Schema.Struct({ n: Schema.Number })
const caller = randomUUID()

/** Runs `work` under `key` (for `request`), counting how often the work itself ran. */
const once = <E>(key: string | undefined, request: unknown, work: Effect.Effect<{ n: number }, E>) =>
  Effect.runPromise(
    Effect.flatMap(Effect.service(Idempotency), (idempotency) =>
      Effect.result(idempotency.claimed({ caller, key: Option.fromNullishOr(key), request }, Answer, work)),
    ).pipe(Effect.provideContext(running.context)),
  )

describe("Idempotency-Key outside the work's transactions", () => {
  it("replays a success without running the work again; another request under the key is 422", async () => {
    let runs = 0
    const work = Effect.sync(() => ({ n: ++runs }))
    const key = randomUUID()
    expect(await once(key, { a: 1 }, work)).toMatchObject({ _tag: "Success", success: { n: 1 } })
    expect(await once(key, { a: 1 }, work)).toMatchObject({ _tag: "Success", success: { n: 1 } })
    expect(runs).toBe(1)
    const other = await once(key, { a: 2 }, work)
    expect(other).toMatchObject({ _tag: "Failure", failure: { status: 422, code: "idempotency_key_reused" } })
    // Without a key the work simply runs.
    expect(await once(undefined, { a: 1 }, work)).toMatchObject({ success: { n: 2 } })
  })

  it("answers 409 while the first request runs, and runs the work once", async () => {
    let runs = 0
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    const work = Effect.promise(() => gate).pipe(Effect.map(() => ({ n: ++runs })))
    const key = randomUUID()
    const first = once(key, { b: 1 }, work)
    await new Promise((resolve) => setTimeout(resolve, 200))
    const during = await once(key, { b: 1 }, work)
    expect(during).toMatchObject({ _tag: "Failure", failure: { status: 409 } })
    release()
    expect(await first).toMatchObject({ success: { n: 1 } })
    expect(await once(key, { b: 1 }, work)).toMatchObject({ success: { n: 1 } })
    expect(runs).toBe(1)
  })

  it("keeps the key of a request that failed part-way (503, a defect): 409, never the work again", async () => {
    let runs = 0
    for (const failing of [
      Effect.suspend(() => {
        runs++
        return Effect.fail(new ServiceUnavailable({ detail: "the provider went away after the charge" }))
      }),
      Effect.suspend(() => {
        runs++
        return Effect.die(new Error("crash"))
      }),
    ]) {
      const key = randomUUID()
      const failed = await Effect.runPromise(
        Effect.exit(
          Effect.flatMap(Effect.service(Idempotency), (idempotency) =>
            idempotency.claimed({ caller, key: Option.some(key), request: { c: 1 } }, Answer, failing),
          ).pipe(Effect.provideContext(running.context)),
        ),
      )
      expect(failed._tag).toBe("Failure")
      const retry = await once(
        key,
        { c: 1 },
        Effect.sync(() => ({ n: ++runs })),
      )
      expect(retry).toMatchObject({ _tag: "Failure", failure: { status: 409 } })
      expect((retry as { failure: unknown }).failure).toBeInstanceOf(Conflict)
    }
    expect(runs).toBe(2)
  })

  it("frees the key of a request refused before any write (a 4xx): the same key works once mended", async () => {
    const key = randomUUID()
    const refused = await once(key, { d: 1 }, Effect.fail(new Conflict({ detail: "no payment method" })))
    expect(refused).toMatchObject({ _tag: "Failure", failure: { status: 409, detail: "no payment method" } })
    expect(await once(key, { d: 1 }, Effect.succeed({ n: 7 }))).toMatchObject({ success: { n: 7 } })
    const kept = await sql(`SELECT response FROM ${options.schema}.idempotency_keys WHERE caller = $1 AND key = $2`, [
      caller,
      key,
    ])
    expect(kept).toEqual([{ response: { n: 7 } }])
  })
})
