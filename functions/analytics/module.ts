import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { migrations } from "./migrations/index.ts"

/** Analytics: product events (ingested, and every platform event), rolled up per minute, hour and day; reports. */
export const manifest = defineModule({
  name: "analytics",
  version: "0.1.0",
  description: "Product and platform events, counted once, rolled up per minute/hour/day; time series, top, funnels",
  ports: { http: 8093 },
  // authz answers the permission checks of its report routes.
  dependsOn: ["authz"],
  permissions: [{ name: "analytics.report.read", description: "Read analytics reports" }],
  events: {
    publishes: [],
    // Every producer's events, counted under their type (the topics come from functions/registry.ts, as audit's); this
    // covers the session revocations and permission changes it follows too.
    consumes: ["*"],
  },
  migrations: [...kernelMigrations, ...migrations],
})
