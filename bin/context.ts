// What every command's action gets: the platform's URL, the output (human or `--json`), and the signed-in API.

import type { PlatformClient } from "@platform/client"
import type { Command } from "commander"
import { makeOutput, type Output } from "./output.ts"
import { openSession, type StoredSession } from "./session.ts"

export interface Context {
  /** The platform's URL: `--url`, else PLATFORM_URL, else http://localhost:8080. */
  readonly url: string
  readonly out: Output
  /** The API as the signed-in user (exit code 3 when not signed in). */
  api(): Promise<PlatformClient>
  /** The stored session, refreshed if it was about to expire (exit code 3 when not signed in). */
  session(): Promise<StoredSession>
}

export type GlobalOptions = {
  readonly url: string
  readonly json?: boolean
}

export const contextOf = (command: Command): Context => {
  const { url, json } = command.optsWithGlobals<GlobalOptions>()
  let opened: ReturnType<typeof openSession> | undefined
  const open = () => {
    opened ??= openSession(url)
    return opened
  }
  return {
    url,
    out: makeOutput(json === true),
    api: async () => (await open()).api,
    session: async () => (await open()).session(),
  }
}

/**
 * A command's action: `run` with the context, the command's arguments and its own options. Commander calls actions
 * with the arguments, then the options, then the command: the command is all this needs.
 */
export const action =
  <O>(run: (ctx: Context, args: ReadonlyArray<string>, options: O) => Promise<void>) =>
  (...all: Array<unknown>) => {
    const command = all.at(-1) as Command
    return run(contextOf(command), command.processedArgs as Array<string>, command.opts<O & object>())
  }
