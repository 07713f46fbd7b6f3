import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { migrations } from "./migrations/index.ts"

/** Audit: the append-only, hash-chained audit log of every service's events; query and verify. */
export const manifest = defineModule({
  name: "audit",
  version: "0.1.0",
  description: "Append-only, hash-chained audit log fed by every service's events; query and verify",
  ports: { http: 8084, grpc: 9084 },
  // authz answers the permission checks of its routes.
  dependsOn: ["authz"],
  permissions: [
    { name: "audit.event.read", description: "Read the audit log" },
    { name: "audit.event.verify", description: "Verify the audit log's hash chain" },
  ],
  events: {
    publishes: [],
    // Every producer's events: the topics come from functions/registry.ts (not listed type by type here); this covers
    // the session revocations and permission changes it follows too.
    consumes: ["*"],
  },
  migrations: [...kernelMigrations, ...migrations],
})
