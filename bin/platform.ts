#!/usr/bin/env node
// `platform`: the platform's admin command line (`npx platform --help`). Node runs this TypeScript as is (type
// stripping), so it uses erasable syntax only. docs/cli.md describes the commands, the exit codes and the session.
import { CommanderError } from "commander"
import { Exit, toCliError } from "./exit.ts"
import { makeOutput } from "./output.ts"
import { buildProgram } from "./program.ts"

// Piped into `head`: stdout closing early is the reader's choice, not a failure.
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(Exit.ok)
  throw error
})

const program = buildProgram()
try {
  await program.parseAsync(process.argv)
} catch (error) {
  if (error instanceof CommanderError) {
    // Commander has printed the help or the version it was asked for (its exit code 0), or what was wrong with the
    // command line (a group without a command gets its help, as an error).
    process.exitCode = error.exitCode === 0 ? Exit.ok : Exit.usage
  } else {
    const { url, json } = program.opts<{ url: string; json?: boolean }>()
    const failure = toCliError(error, url)
    makeOutput(json === true).fail(failure)
    process.exitCode = failure.code
  }
}
