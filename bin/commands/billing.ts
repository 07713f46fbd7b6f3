// `platform billing`: the plans on offer and everyone's subscriptions.
import { ok } from "@platform/client"
import { type Command, Option } from "commander"
import { action } from "../context.ts"
import { userId } from "../lookup.ts"
import { money, when } from "../output.ts"
import { listPages, type PageOptions, withPageOptions } from "../pages.ts"

const SUBSCRIPTION_STATUSES = ["trialing", "active", "past_due", "canceled", "incomplete"] as const

export const billingCommands = (program: Command) => {
  const billing = program.command("billing").description("Billing: plans and subscriptions")

  withPageOptions(billing.command("plans").description("List the active plans")).action(
    action<PageOptions>(async (ctx, _args, options) => {
      const api = await ctx.api()
      const page = await listPages(ctx, "plans", options, (query) =>
        ok(api.GET("/api/v1/billing/plans", { params: { query } })),
      )
      if (ctx.out.json) ctx.out.printJson(page)
      else
        ctx.out.table(
          ["code", "name", "price", "every", "trial days", "id"],
          page.items.map((p) => [
            ctx.out.c.bold(p.code),
            p.name,
            money(Number(p.amount), p.currency),
            `${p.intervalCount} ${p.interval}${Number(p.intervalCount) === 1 ? "" : "s"}`,
            Number(p.trialDays),
            p.id,
          ]),
        )
    }),
  )

  withPageOptions(billing.command("subscriptions").description("List everyone's subscriptions, newest first"))
    .addOption(new Option("--status <status>", "only subscriptions in this status").choices(SUBSCRIPTION_STATUSES))
    .option("--customer <user>", "only this customer's (email or id)")
    .action(
      action<PageOptions & { status?: (typeof SUBSCRIPTION_STATUSES)[number]; customer?: string }>(
        async (ctx, _args, options) => {
          const api = await ctx.api()
          const filters = {
            ...(options.status === undefined ? {} : { status: options.status }),
            ...(options.customer === undefined ? {} : { customerId: await userId(api, options.customer) }),
          }
          const page = await listPages(ctx, "subscriptions", options, (query) =>
            ok(api.GET("/api/v1/billing/subscriptions", { params: { query: { ...query, ...filters } } })),
          )
          if (ctx.out.json) ctx.out.printJson(page)
          else
            ctx.out.table(
              ["id", "customer", "plan", "status", "period ends", "cancels at end", "created"],
              page.items.map((s) => [
                s.id,
                s.customerId,
                s.planId,
                s.status,
                when(s.currentPeriodEnd),
                s.cancelAtPeriodEnd,
                when(s.createdAt),
              ]),
            )
        },
      ),
    )
}
