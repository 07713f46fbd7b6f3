import { Cause, Context, Effect, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { Db } from "./Db.ts"
import { channelOf, MAX_EVENT_BYTES, Outbox } from "./Outbox.ts"
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

describe("Outbox notifications", () => {
  it("notifies the outbox's channel when a publishing transaction commits, and not when it rolls back", async () => {
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const db = yield* serviceDb("t_outbox_notify")
        const outbox = yield* outboxOf(db)
        const heard: Array<string> = []
        // A listener on a connection of its own, as the relay holds one.
        const client = yield* Effect.acquireRelease(
          Effect.promise(() => db.pool.connect()),
          (c) => Effect.sync(() => c.release(true)),
        )
        client.on("notification", (message) => heard.push(message.channel))
        yield* Effect.promise(() => client.query(`LISTEN "${channelOf(db.schema)}"`))
        const rolledBack = yield* Effect.exit(
          db.transaction(
            Effect.andThen(
              outbox.publish({ type: "test.item.created", subject: "k", data: { n: 1 } }),
              Effect.fail("undone"),
            ),
          ),
        )
        // Delivered at COMMIT: nothing heard while the transaction is open.
        const beforeCommit = yield* db.transaction(
          Effect.gen(function* () {
            yield* outbox.publish({ type: "test.item.created", subject: "k", data: { n: 2 } })
            yield* Effect.sleep("200 millis")
            return heard.length
          }),
        )
        const deadline = Date.now() + 5_000
        while (heard.length === 0 && Date.now() < deadline) yield* Effect.sleep("10 millis")
        yield* Effect.sleep("200 millis")
        return { rolledBack: rolledBack._tag, beforeCommit, heard }
      }).pipe(Effect.scoped),
    )
    expect(result.rolledBack).toBe("Failure")
    expect(result.beforeCommit).toBe(0)
    expect(result.heard).toEqual([expect.stringMatching(/^outbox_t_outbox_notify/)])
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
