import { Effect, Layer, Redacted } from "effect"
import { Db, type DbOptions } from "../../../shared/Db.ts"
import { kernelMigrations } from "../../../shared/KernelMigrations.ts"
import { migrate } from "../../../shared/Migrator.ts"
import { freshSchema } from "../../../shared/testing/harness.ts"
import { migrations } from "../migrations/index.ts"

/** Connection options for a fresh billing schema on the real test Postgres, or on another server's `url`. */
export const billingDbOptions = (url?: string, poolMax = 8): DbOptions => {
  const options = freshSchema("billing")
  return { ...options, poolMax, ...(url === undefined ? {} : { url: Redacted.make(url) }) }
}

/** Billing's database as its engine sees it: a pool on `options`, billing's and the kernel's migrations applied. */
export const billingDb = (options: DbOptions) =>
  Layer.effectDiscard(migrate([...kernelMigrations, ...migrations])).pipe(Layer.provideMerge(Db.layer(options)))

/** Runs `effect` with the services of a built layer's context (tests outside Effect). */
export const runWith =
  <R>(context: import("effect").Context.Context<R>) =>
  <A, E>(effect: Effect.Effect<A, E, R>): Promise<A> =>
    Effect.runPromise(Effect.provideContext(effect, context))
