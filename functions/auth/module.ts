import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { migrations } from "./migrations/index.ts"

/** Auth: sign-in, sessions (refresh-token families), signing keys and JWKS. */
export const manifest = defineModule({
  name: "auth",
  version: "0.1.0",
  description: "Registration, sign-in, sessions, signing keys and the JWKS",
  ports: { http: 8081, grpc: 9081 },
  dependsOn: ["identity"],
  permissions: [],
  events: {
    publishes: ["auth.login.succeeded", "auth.login.failed", "auth.session.revoked", "auth.token.reused"],
    consumes: [
      // Its own revocations, followed in memory like every verifier of access tokens.
      "auth.session.revoked",
      "identity.password.changed",
      "identity.password.reset",
      "identity.user.updated",
      "identity.user.deleted",
    ],
  },
  migrations: [...kernelMigrations, ...migrations],
  secrets: [
    {
      key: "KEY_ENCRYPTION_KEY",
      required: true,
      local: true,
      description: "32 random bytes, base64: seals auth's signing keys",
    },
    {
      key: "OIDC_PROVIDERS",
      required: false,
      placeholder: "[]",
      description: "JSON array of OpenID Providers (holds client secrets)",
    },
  ],
})
