import { generateKeyPairSync } from "node:crypto"
import { Effect, Exit, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
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
