import { Layer } from "effect"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { BillingApi } from "./Api.ts"
import { type BillingConfig, loadConfig } from "./Config.ts"
import { HttpLive } from "./Http.ts"
import { Items } from "./Items.ts"
import { manifest } from "./module.ts"

/** Billing's domain. */
export const DomainLive = Items.layer

/**
 * How billing checks callers: its routes are all open, so it verifies no token. A signed-in route needs
 * `Authentication.layer` against auth's JWKS here, a permission route `Permissions.layer` too (see audit's App.ts).
 */
export const AccessLive = Layer.empty

/** The kernel infrastructure billing runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: BillingConfig) => Kernel.foundation(manifest, config)

/** Billing as its entries and tests run it: its HTTP contract, every route enforced as declared. */
export const app = FunctionApp.define({
  manifest,
  api: BillingApi,
  config: loadConfig,
  http: HttpLive,
  services: (config) => AccessLive.pipe(Layer.provideMerge(DomainLive), Layer.provideMerge(Infrastructure(config))),
})
