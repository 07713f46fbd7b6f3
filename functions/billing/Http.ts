import { Effect, Layer } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import { validationProblems } from "../../shared/Server.ts"
import { BillingApi } from "./Api.ts"
import { Items } from "./Items.ts"

/** Handlers of the items group. */
export const ItemsHttp = HttpApiBuilder.group(
  BillingApi,
  "items",
  Effect.fn(function* (handlers) {
    const items = yield* Items
    return handlers.handle("list", () => Effect.map(items.newest(50), (list) => ({ items: list })))
  }),
)

/** Billing's HTTP routes, ready to serve; needs `Items`. */
export const HttpLive = HttpApiBuilder.layer(BillingApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide(ItemsHttp),
  Layer.provide(validationProblems),
)
