// What `platform` exits with: one code per kind of failure, so a script can tell "sign in again" from "not allowed"
// from "try again later" without parsing messages. docs/cli.md lists the same table.
import { isProblem, ProblemError } from "@platform/client"

export const Exit = {
  /** Done. */
  ok: 0,
  /** Anything not below (a bug, an answer the CLI did not expect). */
  error: 1,
  /** The command line is wrong: an unknown command or option, a missing or malformed argument. */
  usage: 2,
  /** Not signed in, the session ended, or sign-in refused (401). */
  auth: 3,
  /** Signed in, but the permission is missing (403). */
  forbidden: 4,
  /** No such user, role, post, … (404). */
  notFound: 5,
  /** The platform refused the input: invalid (400, 413, 415, 422), a conflict (409) or a stale version (412). */
  invalid: 6,
  /** The platform cannot answer now: unreachable, 5xx, or rate limited (429). Try again later. */
  unavailable: 7,
  /** A check ran and failed: `audit verify` found the hash chain broken. */
  checkFailed: 8,
} as const

export type ExitCode = (typeof Exit)[keyof typeof Exit]

/** A failure the CLI explains itself: its message goes to stderr and the process exits with `code`. */
export class CliError extends Error {
  readonly code: ExitCode
  /** More lines to print under the message (a problem's field errors, a hint). */
  readonly details: ReadonlyArray<string>
  /** The problem+json the platform answered, printed as is under `--json`. */
  readonly problem: unknown
  constructor(code: ExitCode, message: string, details: ReadonlyArray<string> = [], problem?: unknown) {
    super(message)
    this.name = "CliError"
    this.code = code
    this.details = details
    this.problem = problem
  }
}

/** The exit code of an HTTP status the platform answered with. */
export const exitOfStatus = (status: number): ExitCode => {
  if (status === 401) return Exit.auth
  if (status === 403) return Exit.forbidden
  if (status === 404) return Exit.notFound
  if ([400, 409, 412, 413, 415, 422].includes(status)) return Exit.invalid
  if (status === 429 || status >= 500) return Exit.unavailable
  return Exit.error
}

/** Whether `error` is fetch failing to reach the server at all (refused, reset, DNS, timeout). */
const isNetworkFailure = (error: unknown): error is TypeError =>
  error instanceof TypeError && /fetch failed|network/i.test(error.message)

/** Any failure as a CliError: a problem's detail and field errors, an unreachable server, or the error itself. */
export const toCliError = (error: unknown, url: string): CliError => {
  if (error instanceof CliError) return error
  if (error instanceof ProblemError) {
    const problem = error.problem as { detail?: string; title?: string; code?: string; errors?: unknown }
    const fields = Array.isArray(problem.errors)
      ? (problem.errors as Array<{ path?: string; message?: string }>).map(
          (e) => `${e.path ?? "?"}: ${e.message ?? ""}`,
        )
      : []
    const what = problem.detail ?? problem.title ?? `HTTP ${error.status}`
    const code = isProblem(problem) ? ` (${problem.code})` : ""
    return new CliError(exitOfStatus(error.status), `${what}${code}`, fields, error.problem)
  }
  if (isNetworkFailure(error)) {
    const cause = (error.cause as { code?: string; message?: string } | undefined) ?? {}
    return new CliError(Exit.unavailable, `cannot reach ${url}: ${cause.code ?? cause.message ?? error.message}`)
  }
  // A bug of the CLI's: its message, and its stack only when asked for (PLATFORM_DEBUG=1).
  const message = error instanceof Error ? error.message : String(error)
  const stack = process.env.PLATFORM_DEBUG && error instanceof Error ? [error.stack ?? ""] : []
  return new CliError(Exit.error, message, stack)
}
