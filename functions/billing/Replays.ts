import { Context, Effect, Exit, Layer, Option, Schema } from "effect"
import { Db } from "../../shared/Db.ts"
import { fingerprint, WINDOW_HOURS } from "../../shared/Idempotency.ts"
import { Conflict, IdempotencyKeyReused, type ServiceUnavailable } from "../../shared/Problem.ts"
import { unavailable } from "./Model.ts"

// `Idempotency-Key` for billing's requests that call the payment provider (subscribe, pay). The kernel's
// `Idempotency.once` runs the work inside the transaction that keeps the answer; billing's engine must not run so: it
// commits a payment attempt BEFORE calling the provider (so a crash repeats the attempt under the same provider key),
// and it never holds a transaction open across a provider call. Inside one outer transaction a crash after the charge
// would roll the invoice back, and the retry would charge a new invoice under a new key: twice. So here the key is
// claimed in a transaction of its own, the work runs with its own transactions, and the answer is kept after it:
// - the same key and request again: the kept answer (status and body) once there is one;
// - while the first is still running, or when it never finished (a crash, a 503 part-way): 409, since it may have been
//   done in part (read the resource, then use a new key); a second subscription or charge is never made;
// - a request refused before anything was written (a 4xx of the engine: it checks before it writes) leaves no claim,
//   so the same key may be retried, as with the kernel's `once`;
// - the same key with another request: 422 idempotency_key_reused.
// The keys live in the kernel's `idempotency_keys` table, per caller, for Idempotency.WINDOW_HOURS.

/** What a call needs: the caller, the request's key (none: the work runs as is) and what identifies the request. */
export interface ReplayRequest {
  readonly caller: string
  readonly key: Option.Option<string>
  readonly request: unknown
}

/** Idempotent requests whose work runs outside a transaction (see above). */
export class Replays extends Context.Service<
  Replays,
  {
    once<A, I, E, R>(
      request: ReplayRequest,
      schema: Schema.Codec<A, I>,
      work: Effect.Effect<A, E, R>,
    ): Effect.Effect<A, E | Conflict | IdempotencyKeyReused | ServiceUnavailable, R>
  }
>()("billing/Replays") {
  static readonly layer = Layer.effect(
    Replays,
    Effect.gen(function* () {
      const db = yield* Db
      const table = `${db.schema}.idempotency_keys`
      return Replays.of({
        once: <A, I, E, R>(request: ReplayRequest, schema: Schema.Codec<A, I>, work: Effect.Effect<A, E, R>) =>
          Option.match(request.key, {
            onNone: () => work,
            onSome: (key) =>
              Effect.gen(function* () {
                const hash = fingerprint(request.request)
                const claimed = yield* db
                  .query(
                    `INSERT INTO ${table} (caller, key, request_hash) VALUES ($1, $2, $3)
                     ON CONFLICT (caller, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, response = NULL,
                       created_at = now()
                     WHERE ${table}.created_at < now() - make_interval(hours => $4)
                     RETURNING 1`,
                    [request.caller, key, hash, WINDOW_HOURS],
                  )
                  .pipe(Effect.catchTag("DbError", unavailable))
                if (claimed.length === 0) {
                  const [kept] = yield* db
                    .query<{ request_hash: string; response: unknown }>(
                      `SELECT request_hash, response FROM ${table} WHERE caller = $1 AND key = $2`,
                      [request.caller, key],
                    )
                    .pipe(Effect.catchTag("DbError", unavailable))
                  if (kept === undefined || kept.request_hash !== hash) {
                    return yield* new IdempotencyKeyReused({
                      detail: "This Idempotency-Key was used with another request in the last 24 hours",
                    })
                  }
                  if (kept.response === null) {
                    return yield* new Conflict({
                      detail:
                        "A request with this Idempotency-Key is in progress or did not finish: read the resource, then retry with a new key",
                    })
                  }
                  return yield* Schema.decodeUnknownEffect(Schema.toCodecJson(schema))(kept.response).pipe(
                    // A kept answer that no longer reads as what it was: a defect, not the client's fault.
                    Effect.orDie,
                  )
                }
                const exit = yield* Effect.exit(work)
                if (Exit.isSuccess(exit)) {
                  const encoded = yield* Schema.encodeEffect(Schema.toCodecJson(schema))(exit.value).pipe(Effect.orDie)
                  yield* db
                    .query(`UPDATE ${table} SET response = $3 WHERE caller = $1 AND key = $2`, [
                      request.caller,
                      key,
                      JSON.stringify(encoded),
                    ])
                    // The work is done; only its answer was not kept: a retry gets the 409 above, never a repetition.
                    .pipe(Effect.catchTag("DbError", unavailable))
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
