// `platform analytics overview`: sign-ups, active users, logins, posts, subscriptions and MRR over a time range.
import { ok } from "@platform/client"
import type { Command } from "commander"
import { action } from "../context.ts"
import { money, when } from "../output.ts"
import { pastTime } from "../parse.ts"

export const analyticsCommands = (program: Command) => {
  const analytics = program.command("analytics").description("Analytics reports")

  analytics
    .command("overview")
    .description("The platform's key numbers over a time range (default: the last 30 days)")
    .option("--from <time>", "start (RFC 3339, a date, or 15m, 2h, 7d ago; default 30d)", pastTime)
    .option("--to <time>", "end (same forms; default now)", pastTime)
    .action(
      action<{ from?: string; to?: string }>(async (ctx, _args, options) => {
        const api = await ctx.api()
        const query = { from: options.from ?? pastTime("30d"), to: options.to ?? new Date().toISOString() }
        const o = await ok(api.GET("/api/v1/analytics/overview", { params: { query } }))
        if (ctx.out.json) {
          ctx.out.printJson(o)
          return
        }
        ctx.out.line(ctx.out.c.dim(`${when(query.from)} – ${when(query.to)}`))
        ctx.out.pairs([
          ["sign-ups", o.signups],
          [
            "active users (day / week / month)",
            `${o.activeUsers.day} / ${o.activeUsers.week} / ${o.activeUsers.month}`,
          ],
          ["logins", o.logins],
          ["posts published", o.posts],
          ["active subscriptions", o.subscriptions.active],
          ["MRR", money(o.mrr.amount, o.mrr.currency)],
        ])
      }),
    )
}
