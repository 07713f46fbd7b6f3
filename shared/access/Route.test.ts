import { Context, Effect, Layer, Schema } from "effect"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup } from "effect/http-api"
import { describe, expect, it } from "vitest"
import * as Cfg from "../Config.ts"
import * as FunctionApp from "../FunctionApp.ts"
import { Authentication } from "./Authentication.ts"
import * as Route from "./Route.ts"

const Hello = Schema.Struct({ hello: Schema.String })

class ShopApi extends HttpApi.make("shop").add(
  HttpApiGroup.make("shop").add(
    HttpApiEndpoint.get("catalog", "/api/v1/catalog", { success: Hello }).pipe(Route.open({ ipPerMinute: 60 })),
    HttpApiEndpoint.get("cart", "/api/v1/carts/:id", { params: { id: Schema.String }, success: Hello }).pipe(
      Route.signedIn({ userPerMinute: 30 }),
    ),
    HttpApiEndpoint.post("order", "/api/v1/orders", { success: Hello }).pipe(
      Route.requires("shop.order.create", { timeoutMs: 5_000 }),
    ),
  ),
) {}

describe("a route's one declaration, on its endpoint", () => {
  it("gives the route table: method, OpenAPI-style path, access and limits", () => {
    expect(Route.routesOf(ShopApi)).toEqual([
      { method: "GET", path: "/api/v1/catalog", auth: "public", ipPerMinute: 60 },
      { method: "GET", path: "/api/v1/carts/{id}", auth: "user", userPerMinute: 30 },
      { method: "POST", path: "/api/v1/orders", auth: { permission: "shop.order.create" }, timeoutMs: 5_000 },
    ])
  })

  it("puts the bearer middleware on signed-in routes only, from the same declaration", () => {
    const endpoints = ShopApi.groups.shop.endpoints
    expect([...endpoints.catalog.middlewares]).toEqual([])
    expect([...endpoints.cart.middlewares]).toEqual([Authentication])
    expect([...endpoints.order.middlewares]).toEqual([Authentication])
  })

  it("refuses an endpoint that declares nothing, naming it", () => {
    const undeclared = HttpApi.make("shop").add(
      HttpApiGroup.make("shop").add(HttpApiEndpoint.get("catalog", "/api/v1/catalog", { success: Hello })),
    )
    expect(() => Route.routesOf(undeclared)).toThrow(
      "the HTTP contract shop: GET /api/v1/catalog does not declare who may call it",
    )
  })

  it("refuses a bearer middleware that disagrees with the declaration (added beside Route, on the group)", () => {
    const disagreeing = HttpApi.make("shop").add(
      HttpApiGroup.make("shop")
        .add(HttpApiEndpoint.get("catalog", "/api/v1/catalog", { success: Hello }).pipe(Route.open()))
        .middleware(Authentication),
    )
    expect(() => Route.routesOf(disagreeing)).toThrow("its bearer middleware disagrees with its declaration")
  })
})

// What a definition's parts need must be given by its services: a missing one does not compile.
class Greeter extends Context.Service<Greeter, { readonly greet: Effect.Effect<string> }>()("test/Greeter") {}
class GreetApi extends HttpApi.make("greet").add(
  HttpApiGroup.make("greet").add(HttpApiEndpoint.get("greet", "/api/v1/greet", { success: Hello }).pipe(Route.open())),
) {}
const GreetHttp = HttpApiBuilder.layer(GreetApi).pipe(
  Layer.provide(
    HttpApiBuilder.group(
      GreetApi,
      "greet",
      Effect.fn(function* (handlers) {
        const greeter = yield* Greeter
        return handlers.handle("greet", () => Effect.map(greeter.greet, (hello) => ({ hello })))
      }),
    ),
  ),
)
const greetManifest = { name: "greet", version: "0.0.1" }
const greetConfig = Cfg.load(Cfg.base({ httpPort: 18_098 }))

describe("FunctionApp.define", () => {
  it("compiles only when its services give what its handlers need", () => {
    const complete = FunctionApp.define({
      manifest: greetManifest,
      api: GreetApi,
      config: greetConfig,
      http: GreetHttp,
      services: () => Layer.succeed(Greeter, Greeter.of({ greet: Effect.succeed("world") })),
    })
    expect(complete.routes).toEqual([{ method: "GET", path: "/api/v1/greet", auth: "public" }])
    // @ts-expect-error Greeter is missing: the definition names it (`missing: Greeter`) instead of failing at start.
    FunctionApp.define({
      manifest: greetManifest,
      api: GreetApi,
      config: greetConfig,
      http: GreetHttp,
      services: () => Layer.empty,
    })
  })
})
