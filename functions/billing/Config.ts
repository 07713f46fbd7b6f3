import type { Effect } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { manifest } from "./module.ts"

/** Billing's configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http }),
  ...Cfg.database(manifest.name),
})

/** Billing's validated configuration. */
export type BillingConfig = Effect.Success<typeof loadConfig>
