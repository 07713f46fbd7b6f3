// The `platform` command tree (commander): global options, one group of commands per area of the platform, and
// usage errors and help that exit with the documented codes (bin/exit.ts).
import { Command, InvalidArgumentError, Option } from "commander"
import { analyticsCommands } from "./commands/analytics.ts"
import { auditCommands } from "./commands/audit.ts"
import { authCommands } from "./commands/auth.ts"
import { billingCommands } from "./commands/billing.ts"
import { blogCommands } from "./commands/blog.ts"
import { rolesCommands } from "./commands/roles.ts"
import { usersCommands } from "./commands/users.ts"
import { Exit } from "./exit.ts"
import manifest from "./package.json" with { type: "json" }

const url = (value: string): string => {
  let parsed: URL
  try {
    parsed = new URL(value)
  } catch {
    throw new InvalidArgumentError("expected an http(s) URL such as http://localhost:8080")
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw new InvalidArgumentError("expected an http(s) URL such as http://localhost:8080")
  return value
}

const EXIT_CODES = `
Exit codes:
  ${Exit.ok}  done
  ${Exit.error}  an unexpected error
  ${Exit.usage}  usage: unknown command or option, missing or malformed argument
  ${Exit.auth}  not signed in, session ended, or sign-in refused (401)
  ${Exit.forbidden}  permission refused (403)
  ${Exit.notFound}  not found (404)
  ${Exit.invalid}  input refused: invalid (400/413/415/422), conflict (409), stale version (412)
  ${Exit.unavailable}  platform unreachable, failing (5xx) or rate limiting (429): try again later
  ${Exit.checkFailed}  a check failed (audit verify: the hash chain is broken)

Session: stored per URL in the user's config directory (PLATFORM_CONFIG_DIR overrides it), mode 0600.`

export const buildProgram = (): Command => {
  const program = new Command("platform")
    .description("The platform's admin command line: users, roles, audit, blog, billing and analytics over its API")
    .version(manifest.version)
    .addOption(
      new Option("--url <url>", "the platform's URL")
        .env("PLATFORM_URL")
        .default("http://localhost:8080")
        .argParser(url),
    )
    .option("--json", "print the API's JSON on stdout (for scripts) instead of tables")
    // Settings that every command made with .command() below inherits.
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .configureHelp({ showGlobalOptions: true })
    .addHelpText("after", EXIT_CODES)
  authCommands(program)
  usersCommands(program)
  rolesCommands(program)
  auditCommands(program)
  blogCommands(program)
  billingCommands(program)
  analyticsCommands(program)
  return program
}

/** Every command of the tree, depth first (the groups and the program itself included). */
export const allCommands = (command: Command): Array<Command> => [command, ...command.commands.flatMap(allCommands)]

/** A command's words after `platform` (`["users", "list"]`). */
export const pathOf = (command: Command): Array<string> =>
  command.parent === null ? [] : [...pathOf(command.parent), command.name()]
