import { Cause, Context, Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { Db } from "./Db.ts"
import { MAX_EVENT_BYTES, Outbox } from "./Outbox.ts"
import { outboxOf, serviceDb } from "./testing/busHarness.ts"

describe("Outbox", () => {
  it("refuses an event Kafka could never take, so it cannot stall the relay", async () => {
    const exit = await Effect.runPromise(
      Effect.gen(function* () {
        const db = yield* serviceDb("t_outbox")
        const outbox = yield* outboxOf(db)
        const big = "x".repeat(MAX_EVENT_BYTES)
        const refused = yield* Effect.exit(
          db.transaction(outbox.publish({ type: "test.item.created", subject: "k", data: { big } })),
        )
        yield* db.transaction(outbox.publish({ type: "test.item.created", subject: "k", data: { small: 1 } }))
        const rows = yield* db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${db.schema}.outbox`)
        return { refused, count: rows[0]?.n }
      }).pipe(Effect.scoped),
    )
    expect(exit.refused._tag).toBe("Failure")
    expect(exit.count).toBe("1")
  })
})

describe("a function's outbox", () => {
  it("publishes only the event types its manifest declares; another is a defect and writes nothing", async () => {
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const db = yield* serviceDb("t_outbox_declared")
        const manifest = { name: "shop", events: { publishes: ["shop.order.placed"], consumes: [] } }
        const outbox = yield* Effect.map(
          Layer.build(Outbox.layer(manifest).pipe(Layer.provide(Layer.succeed(Db, db)))),
          (c) => Context.get(c, Outbox),
        )
        yield* db.transaction(outbox.publish({ type: "shop.order.placed", subject: "o1", data: {} }))
        const refused = yield* Effect.exit(
          db.transaction(outbox.publish({ type: "shop.order.lost", subject: "o1", data: {} })),
        )
        const rows = yield* db.query<{ type: string }>(`SELECT event->>'type' AS type FROM ${db.schema}.outbox`)
        return { refused, types: rows.map((r) => r.type) }
      }).pipe(Effect.scoped),
    )
    expect(result.refused._tag).toBe("Failure")
    expect(String(result.refused._tag === "Failure" ? Cause.squash(result.refused.cause) : "")).toContain(
      "event shop.order.lost is not declared in shop's manifest (events.publishes)",
    )
    expect(result.types).toEqual(["shop.order.placed"])
  })
})
