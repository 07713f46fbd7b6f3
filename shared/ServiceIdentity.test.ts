import { generateKeyPairSync } from "node:crypto"
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect, Exit, Option, Redacted } from "effect"
import { TestClock } from "effect/testing"
import * as Problem from "./Problem.ts"
import { callersOf, make, privateKeyText, publicKeyText } from "./ServiceIdentity.ts"

const dev = { serviceKey: Option.none(), servicePublicKeys: Option.none() }
const functions = ["gateway", "auth", "identity", "authz", "audit"]
const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.exit(effect))
const failure = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Exit.findErrorOption(exit)) : undefined

describe("ServiceIdentity", () => {
  const identity = make({ name: "identity", callers: ["auth", "gateway"], functions, config: dev })
  const auth = make({ name: "auth", callers: ["gateway"], functions, config: dev })
  const audit = make({ name: "audit", callers: ["gateway"], functions, config: dev })

  it("a dependent's token is accepted and names it; its token is reused until half its life", async () => {
    const token = await Effect.runPromise(auth.token("identity"))
    expect(await Effect.runPromise(auth.token("identity"))).toBe(token)
    expect(await Effect.runPromise(identity.verify(token))).toBe("auth")
  })

  it.effect(
    "concurrent first calls share one minted token; it is reused until renewAt (half its life), then renewed",
    () =>
      Effect.gen(function* () {
        const caller = make({ name: "auth", callers: [], functions, config: dev })
        const first = yield* Effect.all(
          Array.from({ length: 10 }, () => caller.token("identity")),
          { concurrency: "unbounded" },
        )
        expect(new Set(first).size).toBe(1)
        // renewAt is the signing second plus 30 s: more than 29 s after the first call, at most 30 s.
        yield* TestClock.adjust("29 seconds")
        expect(yield* caller.token("identity")).toBe(first[0])
        yield* TestClock.adjust("1 second")
        const renewed = yield* caller.token("identity")
        expect(renewed).not.toBe(first[0])
        expect(yield* caller.token("identity")).toBe(renewed)
        expect(yield* identity.verify(renewed)).toBe("auth")
      }),
  )

  it.effect("a verified token is not served from memory past its exp: once it has passed, it is refused", () =>
    Effect.gen(function* () {
      const callee = make({ name: "identity", callers: ["auth"], functions, config: dev })
      const caller = make({ name: "auth", callers: [], functions, config: dev })
      const token = yield* caller.token("identity")
      expect(yield* callee.verify(token)).toBe("auth")
      // Past exp and its 5 s of tolerance, on the wall clock (the token's) and on the Clock (the memory's).
      vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 66_000 })
      yield* TestClock.adjust("66 seconds")
      expect(failure(yield* Effect.exit(callee.verify(token)))).toBeInstanceOf(Problem.Unauthorized)
    }).pipe(Effect.ensuring(Effect.sync(() => vi.useRealTimers()))),
  )

  it("refuses no token, garbage, a token for another function, and a caller that does not depend on it", async () => {
    expect(failure(await run(identity.verify(undefined)))).toBeInstanceOf(Problem.Unauthorized)
    expect(failure(await run(identity.verify("a.b.c")))).toBeInstanceOf(Problem.Unauthorized)
    const forAuthz = await Effect.runPromise(auth.token("authz"))
    expect(failure(await run(identity.verify(forAuthz)))).toBeInstanceOf(Problem.Unauthorized)
    const fromAudit = await Effect.runPromise(audit.token("identity"))
    expect(failure(await run(identity.verify(fromAudit)))).toBeInstanceOf(Problem.Forbidden)
  })

  it("with configured keys, the development key of a caller is no longer accepted", async () => {
    const pairs = Object.fromEntries(functions.map((f) => [f, generateKeyPairSync("ed25519")]))
    const publicKeys = Object.fromEntries(functions.map((f) => [f, publicKeyText(pairs[f]!.publicKey)]))
    const configured = (name: string) => ({
      serviceKey: Option.some(Redacted.make(privateKeyText(pairs[name]!.privateKey))),
      servicePublicKeys: Option.some(publicKeys),
    })
    const callee = make({ name: "identity", callers: ["auth"], functions, config: configured("identity") })
    const caller = make({ name: "auth", callers: [], functions, config: configured("auth") })
    expect(await Effect.runPromise(callee.verify(await Effect.runPromise(caller.token("identity"))))).toBe("auth")
    const devToken = await Effect.runPromise(auth.token("identity"))
    expect(failure(await run(callee.verify(devToken)))).toBeInstanceOf(Problem.Unauthorized)
  })

  it("callers are the functions whose manifests depend on it", () => {
    const manifests = [
      { name: "gateway", dependsOn: ["auth", "identity"] },
      { name: "auth", dependsOn: ["identity"] },
      { name: "identity", dependsOn: [] },
    ]
    expect(callersOf("identity", manifests)).toEqual(["gateway", "auth"])
    expect(callersOf("gateway", manifests)).toEqual([])
  })
})
