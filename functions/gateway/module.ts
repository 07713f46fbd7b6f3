import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"

/**
 * Gateway: the public HTTP edge. Its routes are every other function's manifest routes (none of its own are proxied);
 * as the edge it depends on every function it routes to (the registry adds them), so `npm start` brings it up last.
 */
export const manifest = defineModule({
  name: "gateway",
  version: "0.1.0",
  description: "Public HTTP edge: routing from manifests, JWT at the edge, permissions, rate limits, CORS",
  ports: { http: 8080 },
  edge: true,
  // Its upstreams are derived (shared/Module.ts `link`): every function with routes.
  dependsOn: [],
  permissions: [],
  events: {
    publishes: [],
    // Without Redis: revoked sessions (SessionRevocations.following) and authz changes (permission cache).
    consumes: [sessionRevoked.type, ...permissionChanges.types],
  },
  // Only the kernel's inbox and bus positions (used when the gateway follows events through the embedded bus).
  migrations: kernelMigrations,
  assets: [
    // Swagger UI, served at /docs (Docs.ts) from these files.
    {
      from: "swagger-ui-dist",
      dir: "docs-assets",
      files: ["swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png"],
    },
    // The web console, served at /console (console/Console.ts).
    { browser: "functions/gateway/console/app/main.tsx", dir: "console-assets" },
  ],
  settings: [
    {
      key: "CONSOLE_CONNECT_ORIGINS",
      description:
        "origins the web console may send requests to besides the gateway's (comma-separated): the attachment store's upload endpoint when uploads go straight to S3, e.g. https://my-bucket.s3.eu-west-1.amazonaws.com; none by default",
      default: "",
    },
  ],
})
