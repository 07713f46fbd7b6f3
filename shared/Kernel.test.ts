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
  const subscribe = (
    consumes: ReadonlyArray<string>,
    topic: string,
    types: ReadonlyArray<string> | "*" | null = [`${topic.split(".")[0]}.user.deleted`],
  ) =>
    Effect.runPromiseExit(
      Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* EventBus
          yield* bus.subscribe({
            topic,
            group: "g",
            ...(types === null ? {} : { types }),
            handler: () => Effect.void,
          })
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
    expect(Exit.isSuccess(await subscribe(["*"], "billing.events", "*"))).toBe(true)
    expect(subscribed).toEqual(["identity.events", "billing.events"])
    const refused = await subscribe(["identity.user.deleted"], "authz.events")
    expect(Exit.isFailure(refused) ? String(refused.cause) : "subscribed").toContain(
      "auth subscribes to authz.events, which its manifest's events.consumes omits",
    )
    expect(subscribed).toEqual(["identity.events", "billing.events"])
  })

  it("checks each event type a subscription handles, not only its topic", async () => {
    const reason = async (exit: Promise<Exit.Exit<void, unknown>>) => {
      const done = await exit
      return Exit.isFailure(done) ? String(done.cause) : "subscribed"
    }
    expect(await reason(subscribe(["identity.user.deleted"], "identity.events", ["identity.user.created"]))).toContain(
      "auth subscribes to identity.events for identity.user.created, which its manifest's events.consumes omits",
    )
    expect(await reason(subscribe(["identity.user.deleted"], "identity.events", "*"))).toContain(
      "for every event type, which its manifest does not consume",
    )
    expect(await reason(subscribe(["identity.user.deleted"], "identity.events", null))).toContain(
      "without saying which event types it handles (types)",
    )
    expect(await reason(subscribe(["*"], "identity.events", ["authz.role.updated"]))).toContain(
      "for authz.role.updated, which another topic carries",
    )
  })

  it("passes events of other types over without the handler", async () => {
    const handled: Array<string> = []
    let deliver: (type: string) => Effect.Effect<void, unknown> = () => Effect.void
    const capturing = Layer.succeed(
      EventBus,
      EventBus.of({
        subscribe: (options) =>
          Effect.sync(() => {
            deliver = (type) => options.handler({ type } as never) as Effect.Effect<void, unknown>
          }),
      }),
    )
    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* EventBus
          yield* bus.subscribe({
            topic: "identity.events",
            group: "g",
            types: ["identity.user.deleted"],
            handler: (event) => Effect.sync(() => void handled.push(event.type)),
          })
        }).pipe(
          Effect.provide(
            Kernel.declaredConsumer({
              name: "auth",
              events: { publishes: [], consumes: ["identity.user.deleted", "identity.user.created"] },
            }).pipe(Layer.provide(capturing)),
          ),
        ),
      ),
    )
    await Effect.runPromise(Effect.andThen(deliver("identity.user.created"), deliver("identity.user.deleted")))
    expect(handled).toEqual(["identity.user.deleted"])
  })
})
