import { Context, Duration, Effect, Exit, Layer, Metric, Option, Redacted, Schedule, Schema } from "effect"
import pg from "pg"

/** A database failure; carries the driver error as cause and never reaches a client as-is. */
export class DbError extends Schema.TaggedError<DbError>()("DbError", {
  message: Schema.String,
  code: Schema.optional(Schema.String),
  cause: Schema.Defect(),
}) {}

/** The unique-violation SQLSTATE; repositories map it to a domain conflict. */
export const UNIQUE_VIOLATION = "23505"

/** Connection settings for one service's pool; `schema` is the service's own Postgres schema. */
export interface DbOptions {
  readonly url: Redacted.Redacted<string>
  readonly schema: string
  readonly poolMax?: number
  /**
   * How long one query may take: the server cancels it then (`statement_timeout`), and the client gives up shortly
   * after if the server does not answer at all (a hung database), destroying that connection. Default 1 s.
   */
  readonly queryTimeoutMs?: number
  /** How long opening a connection may take (a hung server never completes the handshake). Default 1 s. */
  readonly connectTimeoutMs?: number
  /**
   * How long a query may wait for its turn at a busy pool (every connection in use): load, not an outage, so it is
   * longer. Default 5 s, still under the gateway's route timeout.
   */
  readonly acquireTimeoutMs?: number
  /** A role every session of the pool runs as (`SET ROLE` at connect): least privilege for a second pool. */
  readonly role?: string
}

type Row = Record<string, unknown>

/**
 * Default bound of a query and of a pool acquisition: well under the gateway's route timeout (10 s), so a stuck
 * database answers 503 in about a second instead of holding every caller. Functions with slower queries raise it.
 */
export const DEFAULT_TIMEOUT_MS = 1_000
// Room for the server's own cancel to arrive first on a busy host before the client calls the server hung.
const CLIENT_TIMEOUT_MARGIN_MS = 500
/** Default bound of the wait for a busy pool's next free connection. */
export const DEFAULT_ACQUIRE_TIMEOUT_MS = 5_000

// pg.Pool gives its clients the pool's own `connectionTimeoutMillis` (the wait for a free connection): a client class
// with a shorter handshake bound of its own tells a hung server from a busy pool.
const clientWithConnectTimeout = (connectTimeoutMs: number) =>
  class extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis: connectTimeoutMs })
    }
  }

/** `DbError.code` of a query the client gave up on because the server did not answer in time (a hung server). */
export const CLIENT_TIMEOUT = "client_timeout"

// The transaction the current fiber runs in, if any: its client (queries join it automatically), what is to run
// once it has committed, and (inside `savepoint`) the savepoints to take before the next query.
interface Tx {
  readonly client: pg.PoolClient
  readonly afterCommit: Array<Effect.Effect<void>>
  /** Savepoints opened around the current work (0 at the transaction's own level); names them. */
  readonly depth: number
  /** Takes the savepoints not taken yet; run before each query of the transaction. */
  readonly prepare: Effect.Effect<void, DbError>
  /**
   * Whether a statement failed since the transaction began or was last rolled back to a savepoint: Postgres then
   * refuses every later statement and answers COMMIT with a silent ROLLBACK. Shared by every level of one transaction.
   */
  readonly session: { aborted: boolean }
}
const CurrentTx = Context.Reference<Tx | undefined>("shared/Db/CurrentTx", {
  defaultValue: () => undefined,
})

const currentTx = Effect.service(CurrentTx)

const poolConnections = Metric.gauge("db_pool_connections", { description: "Connections in the pool by state" })
const poolWaiting = Metric.gauge("db_pool_waiting", { description: "Queries waiting for a pooled connection" })

// Pool gauges are refreshed from pg.Pool's counters every few seconds while the layer lives.
// A pool with a role of its own is labelled with it, so two pools of one schema do not overwrite each other's gauges.
const trackPool = (labels: { readonly schema: string; readonly role?: string }, pool: pg.Pool) =>
  Effect.gen(function* () {
    yield* Metric.update(Metric.withAttributes(poolConnections, { ...labels, state: "total" }), pool.totalCount)
    yield* Metric.update(Metric.withAttributes(poolConnections, { ...labels, state: "idle" }), pool.idleCount)
    yield* Metric.update(Metric.withAttributes(poolWaiting, labels), pool.waitingCount)
  }).pipe(Effect.repeat(Schedule.spaced("2 seconds")), Effect.forkScoped)

const queryDuration = Metric.histogram("db_query_duration_seconds", {
  description: "SQL query duration",
  boundaries: Metric.boundariesFromIterable([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]),
})

/** One service's Postgres access: a pool, queries that join the current transaction, and transactions. */
export class Db extends Context.Service<
  Db,
  {
    readonly schema: string
    readonly pool: pg.Pool
    query<A extends Row = Row>(sql: string, params?: ReadonlyArray<unknown>): Effect.Effect<Array<A>, DbError>
    transaction<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DbError, R>
    /**
     * Runs `effect` once the current transaction has committed (never if it rolls back), or at once outside one:
     * for what others must only see after the commit (cache invalidation, announcements). Its failures are logged.
     */
    afterCommit(effect: Effect.Effect<void>): Effect.Effect<void>
    /** Runs `f` on a dedicated connection (advisory locks, LISTEN); released afterwards. */
    withConnection<A, E, R>(f: (client: pg.PoolClient) => Effect.Effect<A, E, R>): Effect.Effect<A, E | DbError, R>
    /**
     * Inside a transaction, runs `effect` so that its failure undoes only its own writes (and drops its `afterCommit`
     * work): the transaction goes on. The SAVEPOINT is taken lazily, before `effect`'s first query, so an effect that
     * does not query costs no round trip. Outside a transaction it is `effect` itself.
     */
    savepoint<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DbError, R>
  }
>()("shared/Db") {
  /**
   * Opens the pool (closed with the layer). SQL names tables schema-qualified (`${db.schema}.users`): the
   * embedded PGlite server multiplexes every connection onto one session, so search_path cannot be per service.
   */
  static readonly layer = (options: DbOptions) =>
    Layer.effect(
      Db,
      Effect.gen(function* () {
        assertIdentifier(options.schema)
        const queryTimeout = options.queryTimeoutMs ?? DEFAULT_TIMEOUT_MS
        const pool = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const pool = new pg.Pool({
              connectionString: Redacted.value(options.url),
              max: options.poolMax ?? 10,
              idleTimeoutMillis: 30_000,
              // The pool bounds the wait for a connection with this; each new client its own handshake (below).
              connectionTimeoutMillis: options.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS,
              Client: clientWithConnectTimeout(options.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS),
              statement_timeout: queryTimeout,
              // The server's own cancel comes first and keeps the connection; this one is for a server that is gone.
              query_timeout: queryTimeout + CLIENT_TIMEOUT_MARGIN_MS,
              application_name: options.schema,
              ...(options.role === undefined ? {} : { options: `-c role=${options.role}` }),
            })
            // An idle client's error (server restart) must not crash the process; the pool replaces it.
            pool.on("error", () => {})
            return pool
          }),
          (pool) => Effect.promise(() => pool.end()),
        )
        assertIdentifier(options.role ?? options.schema)
        yield* trackPool(
          options.role === undefined ? { schema: options.schema } : { schema: options.schema, role: options.role },
          pool,
        )
        return make(options.schema, pool)
      }),
    )
}

/** Builds the service over an existing pool (tests, tools). */
export const make = (schema: string, pool: pg.Pool): Db["Service"] => {
  assertIdentifier(schema)
  const run = <A extends Row>(client: pg.Pool | pg.PoolClient, sql: string, params?: ReadonlyArray<unknown>) =>
    Effect.tryPromise({
      try: () => client.query<A>(sql, params as Array<unknown> | undefined),
      catch: toDbError,
    }).pipe(
      Effect.timed,
      Effect.flatMap(([duration, result]) =>
        Effect.as(Metric.update(queryDuration, Duration.toSeconds(duration)), result.rows),
      ),
      // No stack trace (a `new Error()` per query): the span's statement says where it comes from, and it is
      // made for every query.
      Effect.withSpan(
        "Db.query",
        {
          kind: "client",
          attributes: { "db.system": "postgresql", "db.namespace": schema, "db.query.text": sql.slice(0, 500) },
        },
        { captureStackTrace: false },
      ),
    )

  const query = <A extends Row = Row>(sql: string, params?: ReadonlyArray<unknown>) =>
    Effect.flatMap(currentTx, (tx) =>
      tx === undefined
        ? run<A>(pool, sql, params)
        : Effect.andThen(tx.prepare, run<A>(tx.client, sql, params)).pipe(
            Effect.tapError(() =>
              Effect.sync(() => {
                tx.session.aborted = true
              }),
            ),
          ),
    )

  const withConnection = <A, E, R>(f: (client: pg.PoolClient) => Effect.Effect<A, E, R>) =>
    Effect.acquireUseRelease(Effect.tryPromise({ try: () => pool.connect(), catch: toDbError }), f, (client, exit) =>
      Effect.sync(() => client.release(exit._tag === "Failure" ? true : undefined)),
    )

  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DbError, R> =>
    Effect.flatMap(currentTx, (existing) => {
      if (existing) return effect // nested: join the outer transaction
      // The body's own failure is returned as a value after a clean ROLLBACK, so the connection goes back to the
      // pool; only a failing BEGIN/COMMIT/ROLLBACK fails withConnection, which then destroys the connection.
      const afterCommit: Array<Effect.Effect<void>> = []
      const session = { aborted: false }
      return withConnection((client) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            yield* run(client, "BEGIN")
            const exit = yield* Effect.exit(
              restore(
                Effect.provideService(effect, CurrentTx, {
                  client,
                  afterCommit,
                  depth: 0,
                  prepare: Effect.void,
                  session,
                }),
              ),
            )
            // A server that did not answer will not answer a ROLLBACK either: fail at once, and the connection is
            // destroyed (the server rolls back when it sees it close) instead of waiting out a second timeout.
            if (timedOut(exit)) return yield* Effect.fail(Option.getOrThrow(Exit.findErrorOption(exit)) as DbError)
            if (exit._tag === "Success" && session.aborted) {
              yield* run(client, "ROLLBACK")
              return Exit.fail<E | DbError>(abortedError()) as Exit.Exit<A, E | DbError>
            }
            yield* run(client, exit._tag === "Success" ? "COMMIT" : "ROLLBACK")
            return exit
          }),
        ),
      ).pipe(
        Effect.flatten,
        Effect.tap(() => Effect.forEach(afterCommit, (next) => next, { discard: true })),
        // No stack trace either: made for every transaction; its caller's span is its parent.
        Effect.withSpan("Db.transaction", undefined, { captureStackTrace: false }),
      )
    })

  const afterCommit = (effect: Effect.Effect<void>) =>
    Effect.flatMap(currentTx, (tx) => {
      const logged = Effect.catchCause(effect, (cause) => Effect.logError("after-commit work failed", cause))
      return tx ? Effect.sync(() => void tx.afterCommit.push(logged)) : logged
    })

  const savepoint = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | DbError, R> =>
    Effect.flatMap(currentTx, (outer) => {
      if (outer === undefined) return effect
      // Savepoints are never released: a later one of the same name (a sibling) hides this one, and a rollback to an
      // outer one discards the inner ones; names per depth keep an outer rollback from stopping at an inner one.
      const name = `nested_${outer.depth + 1}`
      let taken = false
      const inner: Tx = {
        client: outer.client,
        afterCommit: [],
        depth: outer.depth + 1,
        session: outer.session,
        prepare: Effect.suspend(() =>
          taken
            ? Effect.void
            : outer.prepare.pipe(
                Effect.andThen(run(outer.client, `SAVEPOINT ${name}`)),
                Effect.andThen(
                  Effect.sync(() => {
                    taken = true
                  }),
                ),
              ),
        ),
      }
      return Effect.exit(Effect.provideService(effect, CurrentTx, inner)).pipe(
        Effect.flatMap((exit) => {
          const rollback = Effect.andThen(
            run(outer.client, `ROLLBACK TO SAVEPOINT ${name}`),
            Effect.sync(() => {
              outer.session.aborted = false
            }),
          )
          if (exit._tag === "Success" && taken && outer.session.aborted) {
            return Effect.andThen(rollback, Exit.fail(abortedError()))
          }
          if (exit._tag === "Success") {
            outer.afterCommit.push(...inner.afterCommit)
            return exit
          }
          // Interrupted: the whole transaction rolls back. Nothing queried: nothing to undo. A server that did not
          // answer will not answer a ROLLBACK TO either: the transaction fails at once (as `transaction` does).
          if (!taken || Exit.hasInterrupts(exit) || timedOut(exit)) return exit
          return Effect.andThen(rollback, exit)
        }),
      )
    })

  return Db.of({ schema, pool, query, transaction, afterCommit, withConnection, savepoint })
}

// The work failed because pg gave up waiting on the server (a query or connection bound): the server may be hung.
const timedOut = (exit: Exit.Exit<unknown, unknown>): boolean => {
  const error: unknown = Option.getOrUndefined(Exit.findErrorOption(exit))
  return error instanceof DbError && error.code === CLIENT_TIMEOUT
}

/** SQLSTATE in_failed_sql_transaction: work went on after a statement failed inside its transaction. */
export const IN_FAILED_TRANSACTION = "25P02"

// Work that caught a failed statement's error and went on has left its transaction aborted (Postgres refuses every
// later statement, and answers COMMIT with a silent ROLLBACK): committing it would report as done what was undone.
// (Known from the failures of the transaction's own queries: pg's status flag can lag a rejected query by a packet.)
const abortedError = () =>
  new DbError({
    message:
      "a statement failed inside the transaction and its error was caught: Postgres aborted the transaction, so its work was rolled back",
    code: IN_FAILED_TRANSACTION,
    cause: undefined,
  })

// pg's own messages for the two client-side timeouts (it gives them no code).
const clientTimeouts = new Set([
  "Query read timeout", // query_timeout
  "timeout expired", // a new connection's handshake
  "timeout exceeded when trying to connect", // the wait for a busy pool
  "Connection terminated due to connection timeout",
])

const toDbError = (cause: unknown) => {
  const message = cause instanceof Error ? cause.message : String(cause)
  return new DbError({
    message,
    code: clientTimeouts.has(message) ? CLIENT_TIMEOUT : (cause as { code?: string } | undefined)?.code,
    cause,
  })
}

/** A plain lower-case SQL identifier, the only kind of name the platform interpolates into SQL (schemas). */
export const SQL_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

/** Refuses anything but a plain lower-case SQL identifier (schema names are interpolated). */
export const assertIdentifier = (name: string): string => {
  if (!SQL_IDENTIFIER.test(name)) throw new Error(`not a safe SQL identifier: ${name}`)
  return name
}
