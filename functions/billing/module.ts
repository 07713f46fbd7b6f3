import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { migrations } from "./migrations/index.ts"

/** Billing: plans, subscriptions, invoices and their payments (its routes are declared on its contract, Api.ts). */
export const manifest = defineModule({
  name: "billing",
  version: "0.1.0",
  description: "Plans, subscriptions, invoices with gapless numbers, payments through a provider, dunning, test clocks",
  ports: { http: 8092 },
  // authz answers the permission checks of its routes and of its ownership rules; identity gives the addresses of
  // receipts (its GetUser).
  dependsOn: ["authz", "identity"],
  permissions: [
    { name: "billing.plan.create", description: "Create plans" },
    { name: "billing.plan.update", description: "Rename, describe and archive plans (never their price)" },
    { name: "billing.subscription.read.any", description: "Read anyone's subscriptions" },
    { name: "billing.subscription.update.any", description: "Cancel and change anyone's subscriptions" },
    { name: "billing.invoice.read.any", description: "Read anyone's invoices" },
    { name: "billing.invoice.update.any", description: "Pay and void anyone's invoices" },
    { name: "billing.testclock.manage", description: "Create and advance test clocks (when they are enabled)" },
  ],
  events: {
    publishes: [
      "billing.plan.created",
      "billing.plan.updated",
      "billing.subscription.created",
      "billing.subscription.renewed",
      "billing.subscription.past_due",
      "billing.subscription.canceled",
      "billing.subscription.plan_changed",
      "billing.invoice.finalized",
      "billing.invoice.paid",
      "billing.invoice.payment_failed",
      "billing.invoice.voided",
    ],
    // Revoked sessions (as every verifier of access tokens) and authz's changes (its permission cache).
    consumes: [sessionRevoked.type, ...permissionChanges.types],
  },
  migrations: [...kernelMigrations, ...migrations],
  // Receipts go out by mail, as identity's mails do.
  secrets: [{ key: "SMTP_URL", required: true, description: "SMTP server for mail (`smtps://user:pass@host:465`)" }],
})
