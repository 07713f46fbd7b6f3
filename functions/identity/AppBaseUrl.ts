import { Context } from "effect"
import { localOrigin } from "../../shared/Config.ts"
import { manifests } from "../registry.ts"

/** The base URL of the app that mails link to (APP_BASE_URL): `${base}/verify-email?token=...`; default the gateway's. */
export const AppBaseUrl = Context.Reference<string>("identity/AppBaseUrl", {
  defaultValue: () => localOrigin("gateway", manifests),
})
