// People name users by email and roles by name; the API takes ids. These look the ids up (an id is taken as is).
import { ok, type PlatformClient } from "@platform/client"
import type { Context } from "./context.ts"
import { CliError, Exit } from "./exit.ts"
import { everyPage } from "./pages.ts"
import { isUuid } from "./parse.ts"

/** The id of the user `idOrEmail` names: an id as is, an email looked up (exit code 5 when no one has it). */
export const userId = async (api: PlatformClient, idOrEmail: string): Promise<string> => {
  if (isUuid(idOrEmail)) return idOrEmail
  if (!idOrEmail.includes("@")) throw new CliError(Exit.usage, `"${idOrEmail}" is neither a user id nor an email`)
  const { items } = await ok(api.GET("/api/v1/users", { params: { query: { email: idOrEmail, limit: "1" } } }))
  const user = items[0]
  if (user === undefined) throw new CliError(Exit.notFound, `no user with the email ${idOrEmail}`)
  return user.id
}

/** The role `idOrName` names: by id or by name, among all roles (exit code 5 when there is none). */
export const roleOf = async (ctx: Context, api: PlatformClient, idOrName: string) => {
  const { items } = await everyPage(ctx, "roles", (query) => ok(api.GET("/api/v1/roles", { params: { query } })))
  const role = items.find((r) => r.id === idOrName || r.name === idOrName)
  if (role === undefined) throw new CliError(Exit.notFound, `no role named ${idOrName}`)
  return role
}
