import { Effect, Exit, Layer } from "effect"
import { describe, expect, it } from "vitest"
import { EventBus } from "./EventBus.ts"
import * as Kernel from "./Kernel.ts"

// The kernel's bus checks every subscription against the manifest: a consumer the manifest does not declare stops the
// function at start instead of drifting silently (audit once declared `consumes: []` and consumed every topic).
describe("Kernel.declaredConsumer", () => {
  const subscribed: Array<string> = []
  const recording = Layer.succeed(
    EventBus,
    EventBus.of({ subscribe: (options) => Effect.sync(() => void subscribed.push(options.topic)) }),
  )
  const subscribe = (consumes: ReadonlyArray<string>, topic: string) =>
    Effect.runPromiseExit(
      Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* EventBus
          yield* bus.subscribe({ topic, group: "g", handler: () => Effect.void })
        }).pipe(
          Effect.provide(
            Kernel.declaredConsumer({ name: "auth", events: { publishes: [], consumes } }).pipe(
              Layer.provide(recording),
            ),
          ),
        ),
      ),
    )

  it("lets a declared consumer subscribe, and fails an undeclared one naming the topic", async () => {
    expect(Exit.isSuccess(await subscribe(["identity.user.deleted"], "identity.events"))).toBe(true)
    expect(Exit.isSuccess(await subscribe(["*"], "billing.events"))).toBe(true)
    expect(subscribed).toEqual(["identity.events", "billing.events"])
    const refused = await subscribe(["identity.user.deleted"], "authz.events")
    expect(Exit.isFailure(refused) ? String(refused.cause) : "subscribed").toContain(
      "auth subscribes to authz.events, which its manifest's events.consumes omits",
    )
    expect(subscribed).toEqual(["identity.events", "billing.events"])
  })
})
