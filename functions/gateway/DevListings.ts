import { Effect, Layer, Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { DEV_MAIL_PATH, DevMail } from "../../shared/DevMailbox.ts"
import { DEV_ERRORS_PATH, ErrorBus } from "../../shared/ErrorBus.ts"
import { ServiceRegistry } from "./ServiceRegistry.ts"

// How long a listing waits for one upstream (each function answers from memory or one query).
const UPSTREAM_TIMEOUT_MS = 2_000

/** One development listing the gateway merges from every upstream's route of the same path. */
interface Listing<A> {
  readonly path: `/${string}`
  /** One item as an upstream sends it. */
  readonly item: Schema.Codec<A, unknown>
  /** The time an item is sorted by (newest first). */
  readonly time: (item: A) => number
  /** The gateway's own items, if it has any. */
  readonly own?: () => ReadonlyArray<A>
  /** How many items the merged listing shows. */
  readonly limit: number
  /** An upstream answering 404 has no such listing (it is left out, not named unreachable). */
  readonly optional: boolean
}

/**
 * `GET <path>` at the gateway (development only: mounted outside production): the items of every upstream the registry
 * knows, asked at the same path (each function lists its own, so it works alike with one process or one per function),
 * merged newest first. An upstream that does not answer is named in `unreachable`.
 */
const merged = <A>(listing: Listing<A>) =>
  Layer.unwrap(
    Effect.gen(function* () {
      const registry = yield* ServiceRegistry
      const decode = Schema.decodeUnknownEffect(Schema.Struct({ items: Schema.Array(listing.item) }))
      const listingOf = (name: string) =>
        Effect.gen(function* () {
          const base = yield* registry.resolve(name)
          if (base._tag === "None") return { name, items: undefined }
          const body = yield* Effect.tryPromise(async () => {
            const response = await fetch(new URL(listing.path, base.value), {
              signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
            })
            if (response.status === 404 && listing.optional) return { items: [] }
            if (!response.ok) throw new Error(`answered ${response.status}`)
            return response.json()
          })
          return { name, items: (yield* decode(body)).items }
        }).pipe(Effect.orElseSucceed(() => ({ name, items: undefined })))
      return HttpRouter.add(
        "GET",
        listing.path,
        Effect.gen(function* () {
          const listings = yield* Effect.forEach(registry.names, listingOf, { concurrency: "unbounded" })
          const items = [...(listing.own?.() ?? []), ...listings.flatMap((l) => l.items ?? [])]
            .sort((a, b) => listing.time(b) - listing.time(a))
            .slice(0, listing.limit)
          const unreachable = listings.filter((l) => l.items === undefined).map((l) => l.name)
          return HttpServerResponse.jsonUnsafe({ items, unreachable })
        }),
      )
    }),
  )

/** `GET /_dev/errors`: the platform's 100 most recent error reports, the gateway's own bus's and every function's. */
export const errors = Layer.unwrap(
  Effect.map(Effect.service(ErrorBus), (bus) =>
    merged<{ readonly timestamp: number }>({
      path: DEV_ERRORS_PATH,
      // An event as its function sent it, with the time it is sorted by.
      item: Schema.StructWithRest(Schema.Struct({ timestamp: Schema.Number }), [
        Schema.Record(Schema.String, Schema.Unknown),
      ]),
      time: (event) => event.timestamp,
      own: () => bus.recent(),
      limit: 100,
      // Every function lists its errors outside production.
      optional: false,
    }),
  ),
)

/**
 * `GET /_dev/mail`: the 50 most recently sent mails of every function whose mail goes to its dev mailbox (identity's
 * verification and reset mails, billing's receipts), newest first. A function without a dev mailbox (it sends no mail,
 * or over SMTP) answers 404 and is left out.
 */
export const mail = merged({
  path: DEV_MAIL_PATH,
  item: DevMail,
  time: (mail) => Date.parse(mail.sentAt),
  limit: 50,
  optional: true,
})
