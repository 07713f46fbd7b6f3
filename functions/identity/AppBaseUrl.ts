import { Context } from "effect"

/** The base URL of the app that mails link to (APP_BASE_URL): `${base}/verify-email?token=...`. */
export const AppBaseUrl = Context.Reference<string>("identity/AppBaseUrl", {
  defaultValue: () => "http://localhost:8080",
})
