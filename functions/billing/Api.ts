import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { ServiceUnavailable } from "../../shared/Problem.ts"
import { manifest } from "./module.ts"

/** An item as the API shows it. */
export const Item = Schema.Struct({ id: Schema.String, title: Schema.String, createdAt: Schema.String })

/** Billing's items. */
export class ItemsApi extends HttpApiGroup.make("items")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/billing/items", {
      success: Schema.Struct({ items: Schema.Array(Item) }),
      error: [ServiceUnavailable],
    })
      .annotate(OpenApi.Summary, "The newest items")
      // Who may call it, said once: the guard, the gateway and the document follow (Route.signedIn, Route.requires).
      .pipe(Route.open({ ipPerMinute: 120 })),
  )
  .annotate(OpenApi.Description, "Billing's items") {}

/** Billing's HTTP contract. */
export class BillingApi extends Contract.make(HttpApi.make("billing").add(ItemsApi), manifest) {}
