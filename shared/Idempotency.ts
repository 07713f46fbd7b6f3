import { createHash } from "node:crypto"
import { Context, Effect, Exit, Layer, Option, Schema } from "effect"
import { IDEMPOTENCY_KEY } from "./Contract.ts"
import { Db, type DbError } from "./Db.ts"
import { Conflict, IdempotencyKeyReused, ValidationFailed } from "./Problem.ts"

// `Idempotency-Key` on creating requests (API.md "Common to the feature services"): the same key with the same request
// within 24 hours answers what the first one answered, without doing it again; the same key with another request is a
// 422. Keys are scoped per caller. The key's row is written in the transaction that does the work, so the work and
// its remembered answer commit together or not at all: a request retried after a crash, a timeout or a lost answer
// either finds the committed answer or does the work for the first time. A failed request leaves nothing behind
// (its transaction rolled back), so a retry runs again (and fails the same way if the request was bad).

/** The request header. */
export const HEADER = IDEMPOTENCY_KEY

/** How long a key's answer is kept and replayed (the retention job deletes it after). */
export const WINDOW_HOURS = 24

/** The `Idempotency-Key` of a request: none when absent; a 400 when it is not 1–255 visible ASCII characters. */
export const keyOf = (
  headers: Readonly<Record<string, string | undefined>>,
): Effect.Effect<Option.Option<string>, ValidationFailed> => {
  const key = headers[HEADER]
  if (key === undefined) return Effect.succeedNone
  if (/^[\x21-\x7e]{1,255}$/.test(key)) return Effect.succeedSome(key)
  return Effect.fail(
    new ValidationFailed({
      detail: "The Idempotency-Key header must be 1-255 visible ASCII characters",
      errors: [{ path: "Idempotency-Key", message: "Expected 1-255 visible ASCII characters" }],
    }),
  )
}

// A request's fingerprint: SHA-256 of its canonical JSON (object keys sorted), so `{a, b}` and `{b, a}` are one request.
const canonical = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(canonical)
    : typeof value === "object" && value !== null && !(value instanceof Date)
      ? Object.fromEntries(
          Object.keys(value)
            .sort()
            .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
        )
      : value
export const fingerprint = (request: unknown): string =>
  createHash("sha256")
    .update(JSON.stringify(canonical(request)) ?? "null")
    .digest("base64url")

/** What `once` needs to know of a request. */
export interface Request {
  /** Who sent it (their user id): keys of different callers never meet. */
  readonly caller: string
  readonly key: string
  /** What identifies the request beyond the key (its route and body): another one under the same key is a 422. */
  readonly request: unknown
}

/** Creating requests made idempotent by their `Idempotency-Key`. */
export class Idempotency extends Context.Service<
  Idempotency,
  {
    /**
     * Runs `work` once per caller and key within the window, in one transaction with the answer's record, and
     * returns its answer (kept as `schema`'s JSON); a repeat gets the kept answer, decoded. Without a key
     * (`Option.none()`), it is `work` alone.
     */
    once<A, I, E, R>(
      request: Omit<Request, "key"> & { readonly key: Option.Option<string> },
      schema: Schema.Codec<A, I>,
      work: Effect.Effect<A, E, R>,
    ): Effect.Effect<A, E | IdempotencyKeyReused | DbError | Schema.SchemaError, R>
    /**
     * The same for work that must not run inside one transaction with its answer: work that commits before it calls
     * another system and never holds a transaction open across the call (billing's payments: inside one outer
     * transaction a crash after the charge would roll the invoice back, and the retry would charge a new invoice under
     * a new key). The key is claimed in a transaction of its own, the work runs with its own transactions, and its
     * answer is kept after it:
     * - the same key and request again: the kept answer once there is one;
     * - while the first still runs, or when it never finished (a crash, a 503 part-way): 409, since it may have been
     *   done in part (read the resource, then use a new key); the work is never run twice;
     * - work refused before it wrote anything (a 4xx) leaves no claim, so the key may be retried, as with `once`;
     * - the same key with another request: 422 idempotency_key_reused.
     */
    claimed<A, I, E, R>(
      request: Omit<Request, "key"> & { readonly key: Option.Option<string> },
      schema: Schema.Codec<A, I>,
      work: Effect.Effect<A, E, R>,
    ): Effect.Effect<A, E | Conflict | IdempotencyKeyReused | DbError, R>
  }
>()("shared/Idempotency") {
  /** Keys in the function's own schema (the kernel's `idempotency_keys`). */
  static readonly layer = Layer.effect(
    Idempotency,
    Effect.gen(function* () {
      const db = yield* Db
      const table = `${db.schema}.idempotency_keys`
      // Takes the key for this request: a row of its own, or the row of a key past its window. None: the key is held.
      const claim = (caller: string, key: string, hash: string) =>
        db.query(
          `INSERT INTO ${table} (caller, key, request_hash) VALUES ($1, $2, $3)
           ON CONFLICT (caller, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, response = NULL,
             created_at = now()
           WHERE ${table}.created_at < now() - make_interval(hours => $4)
           RETURNING 1`,
          [caller, key, hash, WINDOW_HOURS],
        )
      const kept = (caller: string, key: string) =>
        Effect.map(
          db.query<{ request_hash: string; response: unknown }>(
            `SELECT request_hash, response FROM ${table} WHERE caller = $1 AND key = $2`,
            [caller, key],
          ),
          (rows) => rows[0],
        )
      const keep = (caller: string, key: string, encoded: unknown) =>
        db.query(`UPDATE ${table} SET response = $3 WHERE caller = $1 AND key = $2`, [
          caller,
          key,
          JSON.stringify(encoded),
        ])
      const reused = new IdempotencyKeyReused({
        detail: "This Idempotency-Key was used with another request in the last 24 hours",
      })
      return Idempotency.of({
        once: (request, schema, work) =>
          Option.match(request.key, {
            onNone: () => work,
            onSome: (key) =>
              db.transaction(
                Effect.gen(function* () {
                  const hash = fingerprint(request.request)
                  // A concurrent request with the same key waits here until the first commits (then finds its
                  // answer) or rolls back (then does the work itself).
                  const claimed = yield* claim(request.caller, key, hash)
                  if (claimed.length === 0) {
                    const found = yield* kept(request.caller, key)
                    if (found === undefined || found.request_hash !== hash || found.response === null) {
                      return yield* reused
                    }
                    return yield* Schema.decodeUnknownEffect(Schema.toCodecJson(schema))(found.response)
                  }
                  const answer = yield* work
                  yield* keep(request.caller, key, yield* Schema.encodeEffect(Schema.toCodecJson(schema))(answer))
                  return answer
                }),
              ),
          }),
        claimed: (request, schema, work) =>
          Option.match(request.key, {
            onNone: () => work,
            onSome: (key) =>
              Effect.gen(function* () {
                const hash = fingerprint(request.request)
                const claimed = yield* claim(request.caller, key, hash)
                if (claimed.length === 0) {
                  const found = yield* kept(request.caller, key)
                  if (found === undefined || found.request_hash !== hash) return yield* reused
                  if (found.response === null) {
                    return yield* new Conflict({
                      detail:
                        "A request with this Idempotency-Key is in progress or did not finish: read the resource, then retry with a new key",
                    })
                  }
                  // A kept answer that no longer reads as what it was: a defect, not the client's fault.
                  return yield* Effect.orDie(Schema.decodeUnknownEffect(Schema.toCodecJson(schema))(found.response))
                }
                const exit = yield* Effect.exit(work)
                if (Exit.isSuccess(exit)) {
                  // The work is done; should its answer not be kept, a retry gets the 409 above, never a repetition.
                  const encoded = yield* Effect.orDie(Schema.encodeEffect(Schema.toCodecJson(schema))(exit.value))
                  yield* keep(request.caller, key, encoded)
                  return exit.value
                }
                // Refused before any write (a 4xx): nothing was done, the key is free again.
                const refused = Exit.findErrorOption(exit).pipe(
                  Option.filter((error) => {
                    const status = (error as { readonly status?: unknown }).status
                    return typeof status === "number" && status >= 400 && status < 500
                  }),
                )
                if (Option.isSome(refused)) {
                  yield* db
                    .query(`DELETE FROM ${table} WHERE caller = $1 AND key = $2 AND response IS NULL`, [
                      request.caller,
                      key,
                    ])
                    .pipe(Effect.ignore)
                }
                return yield* exit
              }),
          }),
      })
    }),
  )
}
