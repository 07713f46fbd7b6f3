// `platform users`: list (filtered by email), search (by part of an email or name), show, disable, enable.
import { type components, ok, type PlatformClient } from "@platform/client"
import type { Command } from "commander"
import { action, type Context } from "../context.ts"
import { userId } from "../lookup.ts"
import { when } from "../output.ts"
import { everyPage, listPages, type PageOptions, withPageOptions } from "../pages.ts"

type User = components["schemas"]["UserEncoded"]

const usersTable = (ctx: Context, users: ReadonlyArray<User>) => {
  const { c } = ctx.out
  const status = (s: User["status"]) => (s === "active" ? c.green(s) : s === "disabled" ? c.yellow(s) : c.red(s))
  ctx.out.table(
    ["id", "email", "name", "status", "verified", "created"],
    users.map((u) => [u.id, u.email, u.name, status(u.status), u.emailVerified, when(u.createdAt)]),
  )
}

const setStatus = (verb: string, status: "active" | "disabled") =>
  action(async (ctx, [who]) => {
    const api = await ctx.api()
    const id = await userId(api, who!)
    const user = await ok(api.PATCH("/api/v1/users/{id}", { params: { path: { id } }, body: { status } }))
    if (ctx.out.json) ctx.out.printJson(user)
    else ctx.out.line(`${verb} ${user.email} (${user.id}).`)
  })

const listUsers = (api: PlatformClient, email?: string) => (query: { limit: string; cursor?: string }) =>
  ok(api.GET("/api/v1/users", { params: { query: { ...query, ...(email === undefined ? {} : { email }) } } }))

export const usersCommands = (program: Command) => {
  const users = program.command("users").description("Users: list, search, show, disable, enable")

  withPageOptions(users.command("list").description("List users, newest first"))
    .option("--email <email>", "only the user with this email (any case)")
    .action(
      action<PageOptions & { email?: string }>(async (ctx, _args, options) => {
        const page = await listPages(ctx, "users", options, listUsers(await ctx.api(), options.email))
        if (ctx.out.json) ctx.out.printJson(page)
        else usersTable(ctx, page.items)
      }),
    )

  users
    .command("search")
    .description("Find users whose email or name contains <text> (any case; reads every page)")
    .argument("<text>", "part of an email or a name")
    .action(
      action(async (ctx, [text]) => {
        // The API filters by a whole email only: a part of one, or a name, is looked for here, over every page.
        const { items } = await everyPage(ctx, "users", listUsers(await ctx.api()))
        const needle = text!.toLowerCase()
        const found = items.filter(
          (u) => u.email.toLowerCase().includes(needle) || u.name.toLowerCase().includes(needle),
        )
        if (ctx.out.json) ctx.out.printJson({ items: found, nextCursor: null })
        else usersTable(ctx, found)
      }),
    )

  users
    .command("show")
    .description("Show one user")
    .argument("<user>", "the user's id or email")
    .action(
      action(async (ctx, [who]) => {
        const api = await ctx.api()
        const id = await userId(api, who!)
        const user = await ok(api.GET("/api/v1/users/{id}", { params: { path: { id } } }))
        if (ctx.out.json) ctx.out.printJson(user)
        else usersTable(ctx, [user])
      }),
    )

  users
    .command("disable")
    .description("Disable a user: their sessions end and they cannot sign in until enabled")
    .argument("<user>", "the user's id or email")
    .action(setStatus("Disabled", "disabled"))

  users
    .command("enable")
    .description("Enable a disabled user again")
    .argument("<user>", "the user's id or email")
    .action(setStatus("Enabled", "active"))
}
