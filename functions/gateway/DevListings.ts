import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { DEV_ERRORS_PATH, ErrorBus } from "../../shared/ErrorBus.ts"
import { ServiceRegistry } from "./ServiceRegistry.ts"

// An upstream's listing: its events as it sent them, each with the time it is sorted by.
const Listing = Schema.Struct({
  items: Schema.Array(
    Schema.StructWithRest(Schema.Struct({ timestamp: Schema.Number }), [Schema.Record(Schema.String, Schema.Unknown)]),
  ),
})
const decodeListing = Schema.decodeUnknownEffect(Listing)

// How long the listing waits for one upstream (each function answers from memory).
const UPSTREAM_TIMEOUT_MS = 2_000
// How many events the merged listing shows.
const LIMIT = 100

/**
 * `GET /_dev/errors` at the gateway (development only: mounted outside production): the most recent error reports of
 * the whole platform, newest first, from the gateway's own bus and every upstream's `GET /_dev/errors` (each function
 * lists its own, so it works alike with one process or one per function). An upstream that does not answer is named
 * in `unreachable`.
 */
export const route = Layer.unwrap(
  Effect.gen(function* () {
    const errors = yield* ErrorBus
    const registry = yield* ServiceRegistry
    const listingOf = (name: string) =>
      Effect.gen(function* () {
        const base = yield* registry.resolve(name)
        if (base._tag === "None") return { name, items: undefined }
        const body = yield* Effect.tryPromise(async () => {
          const response = await fetch(new URL(DEV_ERRORS_PATH, base.value), {
            signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
          })
          if (!response.ok) throw new Error(`answered ${response.status}`)
          return response.json()
        })
        return { name, items: (yield* decodeListing(body)).items }
      }).pipe(Effect.orElseSucceed(() => ({ name, items: undefined })))
    return HttpRouter.add(
      "GET",
      DEV_ERRORS_PATH,
      Effect.gen(function* () {
        const listings = yield* Effect.forEach(registry.names, listingOf, { concurrency: "unbounded" })
        const items = [...errors.recent(), ...listings.flatMap((l) => l.items ?? [])]
          .sort((a, b) => b.timestamp - a.timestamp)
          .slice(0, LIMIT)
        const unreachable = listings.filter((l) => l.items === undefined).map((l) => l.name)
        return HttpServerResponse.jsonUnsafe({ items, unreachable })
      }),
    )
  }),
)
