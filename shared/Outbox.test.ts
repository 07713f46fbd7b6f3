import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { MAX_EVENT_BYTES } from "./Outbox.ts"
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
