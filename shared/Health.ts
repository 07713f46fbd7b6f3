import { Context, Duration, Effect, Layer, type Scope } from "effect"

/** A named readiness check: succeeds when the dependency answers. */
export interface Check {
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown>
  /**
   * False for a dependency the function serves without (degraded, e.g. Redis): its failure reads "degraded" and leaves
   * the function ready, so an orchestrator does not pull every instance for an outage they ride out. Default true.
   */
  readonly critical?: boolean
}

/** Result of running every readiness check: `ok` unless a critical check fails ("failing"; a non-critical one "degraded"). */
export interface Readiness {
  readonly ok: boolean
  readonly checks: Record<string, "ok" | string>
}

/** The registry of readiness checks behind `/readyz`; every infrastructure layer registers its own. */
export class Health extends Context.Service<
  Health,
  {
    /**
     * Adds a check until the caller's scope closes. Several checks may share a name (two Redis connections, say):
     * the name is "ok" only when every one of them is.
     */
    register(check: Check): Effect.Effect<void, never, Scope.Scope>
    readonly readiness: Effect.Effect<Readiness>
  }
>()("shared/Health") {
  /** An empty registry. */
  static readonly layer = Layer.sync(Health, () => {
    const checks = new Set<Check>()
    const runOne = (check: Check) =>
      check.run.pipe(
        Effect.timeout(Duration.seconds(2)),
        Effect.as("ok" as string),
        Effect.catchCause(() => Effect.succeed(check.critical === false ? "degraded" : "failing")),
      )
    return Health.of({
      register: (check) =>
        Effect.acquireRelease(
          Effect.sync(() => void checks.add(check)),
          () => Effect.sync(() => void checks.delete(check)),
        ),
      readiness: Effect.suspend(() =>
        Effect.forEach([...checks], (c) => Effect.map(runOne(c), (r) => [c.name, r] as const), {
          concurrency: "unbounded",
        }),
      ).pipe(
        Effect.map((results) => {
          const rank = (result: string | undefined) => (result === "failing" ? 2 : result === "degraded" ? 1 : 0)
          const byName: Record<string, string> = {}
          for (const [name, result] of results) {
            if (rank(result) >= rank(byName[name])) byName[name] = result
          }
          return { ok: results.every(([, r]) => r !== "failing"), checks: byName }
        }),
        Effect.withSpan("Health.readiness"),
      ),
    })
  })
}

/** Registers a readiness check from inside a layer (`critical: false`: its failure only degrades, see `Check`). */
export const register = (
  name: string,
  run: Effect.Effect<unknown, unknown>,
  options?: { readonly critical?: boolean },
) =>
  Effect.flatMap(Effect.service(Health), (health) =>
    health.register({ name, run, ...(options?.critical === undefined ? {} : { critical: options.critical }) }),
  )
