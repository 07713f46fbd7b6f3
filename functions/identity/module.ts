import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { migrations } from "./migrations/index.ts"

/** Identity: users, profiles, credentials. The gateway and authz derive routes and permissions from this. */
export const manifest = defineModule({
  name: "identity",
  version: "0.1.0",
  description: "Users, profiles, email verification and credentials",
  ports: { http: 8082, grpc: 9082 },
  // authz answers the permission checks of its admin routes.
  dependsOn: ["authz"],
  permissions: [
    { name: "identity.user.read", description: "Read any user's profile" },
    { name: "identity.user.update", description: "Update any user's profile or status" },
    { name: "identity.user.delete", description: "Delete any user" },
  ],
  events: {
    publishes: [
      "identity.user.created",
      "identity.user.updated",
      "identity.user.deleted",
      "identity.email.verified",
      "identity.password.reset",
      "identity.password.changed",
    ],
    // Revoked sessions (as every verifier of access tokens) and authz's changes (its permission cache).
    consumes: [sessionRevoked.type, ...permissionChanges.types],
  },
  migrations: [...kernelMigrations, ...migrations],
  secrets: [{ key: "SMTP_URL", required: true, description: "SMTP server for mail (`smtps://user:pass@host:465`)" }],
  settings: [{ key: "APP_BASE_URL", description: "the public URL of the platform (links in mails)" }],
})
