// `platform roles`: list, create, grant and revoke (roles named by name or id, users by email or id), and the roles
// a user holds.
import { type components, ok } from "@platform/client"
import type { Command } from "commander"
import { action, type Context } from "../context.ts"
import { CliError, Exit } from "../exit.ts"
import { roleOf, userId } from "../lookup.ts"
import { when } from "../output.ts"
import { everyPage } from "../pages.ts"
import { collect } from "../parse.ts"

type Role = components["schemas"]["RoleEncoded"]

const rolesTable = (ctx: Context, roles: ReadonlyArray<Role>) =>
  ctx.out.table(
    ["name", "permissions", "description", "built in", "id", "created"],
    roles.map((r) => [
      ctx.out.c.bold(r.name),
      r.permissions.join(", "),
      r.description,
      r.builtin,
      r.id,
      when(r.createdAt),
    ]),
  )

/** `grant` and `revoke`: the same look-ups, then PUT or DELETE the assignment. */
const assignment = (grant: boolean) =>
  action(async (ctx, [roleName, who]) => {
    const api = await ctx.api()
    const role = await roleOf(ctx, api, roleName!)
    const user = await userId(api, who!)
    const path = { params: { path: { userId: user, roleId: role.id } } }
    await ok(
      grant
        ? api.PUT("/api/v1/users/{userId}/roles/{roleId}", path)
        : api.DELETE("/api/v1/users/{userId}/roles/{roleId}", path),
    )
    if (ctx.out.json) ctx.out.printJson({ userId: user, roleId: role.id, role: role.name, granted: grant })
    else ctx.out.line(grant ? `Granted ${role.name} to ${who}.` : `Revoked ${role.name} from ${who}.`)
  })

export const rolesCommands = (program: Command) => {
  const roles = program.command("roles").description("Roles: list, create, grant, revoke, and a user's roles")

  roles
    .command("list")
    .description("List every role and its permissions")
    .action(
      action(async (ctx) => {
        const api = await ctx.api()
        const page = await everyPage(ctx, "roles", (query) => ok(api.GET("/api/v1/roles", { params: { query } })))
        if (ctx.out.json) ctx.out.printJson(page)
        else rolesTable(ctx, page.items)
      }),
    )

  roles
    .command("create")
    .description("Create a role granting permissions (module.resource.action; a trailing wildcard such as blog.* too)")
    .argument("<name>", "the role's name")
    .option("-p, --permission <permission>", "a permission the role grants (repeat for more)", collect)
    .option("-d, --description <text>", "what the role is for")
    .action(
      action<{ permission?: Array<string>; description?: string }>(async (ctx, [name], options) => {
        const permissions = options.permission ?? []
        if (permissions.length === 0) throw new CliError(Exit.usage, "give at least one --permission")
        const api = await ctx.api()
        const body = {
          name: name!,
          permissions,
          ...(options.description === undefined ? {} : { description: options.description }),
        }
        const role = await ok(api.POST("/api/v1/roles", { body }))
        if (ctx.out.json) ctx.out.printJson(role)
        else ctx.out.line(`Created role ${role.name} (${role.id}): ${role.permissions.join(", ")}.`)
      }),
    )

  roles
    .command("grant")
    .description("Give a user a role (granting it twice changes nothing)")
    .argument("<role>", "the role's name or id")
    .argument("<user>", "the user's email or id")
    .action(assignment(true))

  roles
    .command("revoke")
    .description("Take a role from a user")
    .argument("<role>", "the role's name or id")
    .argument("<user>", "the user's email or id")
    .action(assignment(false))

  roles
    .command("of")
    .description("List the roles a user holds")
    .argument("<user>", "the user's email or id")
    .action(
      action(async (ctx, [who]) => {
        const api = await ctx.api()
        const id = await userId(api, who!)
        const page = await everyPage(ctx, "roles", (query) =>
          ok(api.GET("/api/v1/users/{userId}/roles", { params: { path: { userId: id }, query } })),
        )
        if (ctx.out.json) ctx.out.printJson(page)
        else rolesTable(ctx, page.items)
      }),
    )
}
