import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { migrations } from "./migrations/index.ts"

/** Authz: roles, permissions, user-role assignments and permission checks. */
export const manifest = defineModule({
  name: "authz",
  version: "0.1.0",
  description: "Roles, permissions, user-role assignments and permission checks",
  ports: { http: 8083, grpc: 9083 },
  dependsOn: [],
  permissions: [
    { name: "authz.permission.read", description: "List the permissions every function defines" },
    { name: "authz.role.create", description: "Create roles" },
    { name: "authz.role.read", description: "Read roles" },
    { name: "authz.role.update", description: "Change roles' names, descriptions and grants" },
    { name: "authz.role.delete", description: "Delete roles" },
    { name: "authz.assignment.create", description: "Give users roles" },
    { name: "authz.assignment.read", description: "Read users' roles" },
    { name: "authz.assignment.delete", description: "Take roles from users" },
  ],
  events: {
    publishes: [
      "authz.role.created",
      "authz.role.updated",
      "authz.role.deleted",
      "authz.assignment.created",
      "authz.assignment.deleted",
    ],
    // The bootstrap administrator's account; revoked sessions (as every verifier of access tokens).
    consumes: ["identity.user.created", "identity.email.verified", sessionRevoked.type],
  },
  migrations: [...kernelMigrations, ...migrations],
})
