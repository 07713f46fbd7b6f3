// Signing in and out: `login` (a masked password prompt, or the password on stdin for scripts; never a flag, which
// would land in the shell's history and in `ps`), `logout`, `whoami`.
import { createInterface } from "node:readline/promises"
import password from "@inquirer/password"
import { ok } from "@platform/client"
import type { Command } from "commander"
import { action } from "../context.ts"
import { CliError, Exit } from "../exit.ts"
import { when } from "../output.ts"
import { credentialsPath, notSignedIn, sessionKey, signIn, signOut, storedSession } from "../session.ts"

/** All of stdin, without the one line end `echo` or a file adds. */
const readStdin = async (): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "")
}

const askEmail = async (): Promise<string> => {
  const prompt = createInterface({ input: process.stdin, output: process.stderr })
  try {
    return (await prompt.question("Email: ")).trim()
  } finally {
    prompt.close()
  }
}

const askPassword = async (): Promise<string> => {
  try {
    return await password({ message: "Password", mask: true }, { output: process.stderr })
  } catch (error) {
    // Ctrl+C at the prompt.
    if ((error as Error).name === "ExitPromptError") throw new CliError(Exit.error, "cancelled")
    throw error
  }
}

export const authCommands = (program: Command) => {
  program
    .command("login")
    .description("Sign in with your email and password; the session is kept for the next commands")
    .option("--email <email>", "your email (default: the one last signed in at this URL, else asked)")
    .option("--password-stdin", "read the password from stdin instead of asking (for scripts)")
    .action(
      action<{ email?: string; passwordStdin?: boolean }>(async (ctx, _args, options) => {
        const interactive = process.stdin.isTTY === true
        const email = options.email ?? storedSession(ctx.url)?.email ?? (interactive ? await askEmail() : undefined)
        if (email === undefined || email === "")
          throw new CliError(Exit.usage, "no email: give --email (stdin is not a terminal to ask on)")
        if (options.passwordStdin !== true && !interactive)
          throw new CliError(Exit.usage, "no terminal to ask for the password on: pipe it with --password-stdin")
        const secret = options.passwordStdin === true ? await readStdin() : await askPassword()
        if (secret === "") throw new CliError(Exit.usage, "the password is empty")
        const session = await signIn(ctx.url, email, secret)
        if (ctx.out.json) ctx.out.printJson({ url: sessionKey(ctx.url), email, expiresAt: session.expiresAt })
        else ctx.out.line(`Signed in to ${sessionKey(ctx.url)} as ${ctx.out.c.bold(email)}.`)
      }),
    )

  program
    .command("logout")
    .description("Sign out: end the session at the platform and forget its tokens here")
    .action(
      action(async (ctx) => {
        const session = storedSession(ctx.url)
        if (session === undefined) throw notSignedIn(ctx.url)
        await signOut(ctx.url, session)
        if (ctx.out.json) ctx.out.printJson({ url: sessionKey(ctx.url), email: session.email })
        else ctx.out.line(`Signed out of ${sessionKey(ctx.url)} (${session.email}).`)
      }),
    )

  program
    .command("whoami")
    .description("Who you are signed in as, and your permissions")
    .action(
      action(async (ctx) => {
        const api = await ctx.api()
        const user = await ok(api.GET("/api/v1/users/me"))
        const { items: permissions } = await ok(api.GET("/api/v1/users/me/permissions"))
        if (ctx.out.json) {
          ctx.out.printJson({ url: sessionKey(ctx.url), user, permissions })
          return
        }
        const session = await ctx.session()
        ctx.out.pairs([
          ["url", sessionKey(ctx.url)],
          ["email", user.email],
          ["name", user.name],
          ["id", user.id],
          ["status", user.status],
          ["permissions", permissions.join(", ")],
          ["access token expires", when(session.expiresAt)],
          ["credentials", credentialsPath()],
        ])
      }),
    )
}
