import { availableParallelism } from "node:os"
import { hash, verify } from "@node-rs/argon2"
import { Context, Effect, Layer, Schema, Semaphore } from "effect"
import { PASSWORD_LENGTH } from "./AccountLinks.ts"

/** argon2id cost: OWASP's minimum (19 MiB, 2 passes, 1 lane) unless configured stronger. */
export interface PasswordCost {
  readonly memoryKib: number
  readonly timeCost: number
}

/** The OWASP-recommended minimum argon2id parameters. */
export const OWASP_MINIMUM: PasswordCost = { memoryKib: 19_456, timeCost: 2 }

/** A password that breaks the policy (8–128 characters). */
export const Password = Schema.String.check(
  // Code points, as the document's minLength/maxLength count them.
  Schema.isMinCodePoints(PASSWORD_LENGTH.min, { message: `must be at least ${PASSWORD_LENGTH.min} characters` }),
  Schema.isMaxCodePoints(PASSWORD_LENGTH.max, { message: `must be at most ${PASSWORD_LENGTH.max} characters` }),
)

/**
 * Hashing and checking passwords with argon2id, on libuv's thread pool (never on the event loop), at most
 * `concurrency` at a time (default: the cores): more would only queue inside the pool while each 19 MiB hash takes
 * the cores from the event loop (the login bench: /healthz p99 4-12x idle with 4 at once on 2 cores).
 */
export class Passwords extends Context.Service<
  Passwords,
  {
    hash(password: string): Effect.Effect<string>
    /** Checks `password` against `stored`; with no stored hash it still does the same work and answers false. */
    verify(stored: string | null | undefined, password: string): Effect.Effect<boolean>
  }
>()("identity/Passwords") {
  /** Passwords at the given cost; a dummy hash made at start keeps unknown accounts as slow as known ones. */
  static readonly layer = (cost: PasswordCost = OWASP_MINIMUM, concurrency = availableParallelism()) =>
    Layer.effect(
      Passwords,
      Effect.gen(function* () {
        const options = { memoryCost: cost.memoryKib, timeCost: cost.timeCost, parallelism: 1 } as const
        const slots = yield* Semaphore.make(Math.max(1, concurrency))
        const hashPassword = Effect.fn("Passwords.hash")((password: string) =>
          slots.withPermit(Effect.promise(() => hash(password, options))),
        )
        // Made once, in the background: start-up does not wait for it (the first check without a stored hash would).
        const dummy = yield* Effect.cached(hashPassword("dummy password for accounts without one"))
        yield* Effect.forkScoped(dummy)
        const verifyPassword = Effect.fn("Passwords.verify")(function* (
          stored: string | null | undefined,
          password: string,
        ) {
          const against = stored ?? (yield* dummy)
          const ok = yield* slots.withPermit(Effect.promise(() => verify(against, password).catch(() => false)))
          return ok && stored != null
        })
        return Passwords.of({ hash: hashPassword, verify: verifyPassword })
      }),
    )
}
