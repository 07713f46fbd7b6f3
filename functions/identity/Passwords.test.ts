import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { OWASP_MINIMUM, Passwords } from "./Passwords.ts"

const run = <A>(f: (p: Passwords["Service"]) => Effect.Effect<A>) =>
  Effect.runPromise(Effect.flatMap(Effect.service(Passwords), f).pipe(Effect.provide(Passwords.layer())))

describe("Passwords", () => {
  it("hashes with argon2id at OWASP's minimum cost and verifies", async () => {
    const result = await run((p) =>
      Effect.gen(function* () {
        const hash = yield* p.hash("correct horse battery")
        return {
          hash,
          right: yield* p.verify(hash, "correct horse battery"),
          wrong: yield* p.verify(hash, "wrong horse battery"),
        }
      }),
    )
    expect(result.hash).toMatch(
      new RegExp(`^\\$argon2id\\$v=19\\$m=${OWASP_MINIMUM.memoryKib},t=${OWASP_MINIMUM.timeCost},p=1\\$`),
    )
    expect(result).toMatchObject({ right: true, wrong: false })
  })

  it("answers false without a stored hash (or with a malformed one), after doing the same work", async () => {
    const result = await run((p) =>
      Effect.gen(function* () {
        const started = performance.now()
        const none = yield* p.verify(undefined, "dummy password for accounts without one")
        const elapsed = performance.now() - started
        const garbage = yield* p.verify("not a hash", "x")
        return { none, garbage, elapsed }
      }),
    )
    expect(result.none).toBe(false)
    expect(result.garbage).toBe(false)
    // A real argon2id verification ran (tens of ms), not an early return.
    expect(result.elapsed).toBeGreaterThan(5)
  })
})
