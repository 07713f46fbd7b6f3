// Child processes, supervised one way for npm start, the system tests and the benches: spawn with an environment and
// labelled output, wait until an HTTP URL answers, notice an exit, stop gracefully (SIGTERM, then SIGKILL).
import { type ChildProcess, spawn } from "node:child_process"
import { get } from "node:http"
import { createInterface } from "node:readline"
import { setTimeout as sleep } from "node:timers/promises"

/** How a child ended: its exit code, or the signal that ended it (both null when it could not be started). */
export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/** `SIGTERM`, `1`, …: how an exit reads in a message. */
export const describeExit = (exit: Exit): string => String(exit.signal ?? exit.code ?? "not started")

export interface SpawnOptions {
  /** Names the child in messages. */
  readonly name: string
  /** The program; this Node by default. */
  readonly command?: string
  readonly args: ReadonlyArray<string>
  readonly cwd?: string
  /** The child's whole environment (process.env by default); an undefined value leaves the variable out. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** "pipe" to write to the child (`process.stdin`). */
  readonly stdin?: "ignore" | "pipe"
  /** "ignore" sends stdout nowhere (the cold-start bench times functions as they start, without a reader). */
  readonly stdout?: "keep" | "ignore"
  /** When set, every line the child prints is printed on this process's stdout after this label. */
  readonly label?: string
  /** Every line the child prints, as it comes. */
  readonly onLine?: (line: string, stream: "stdout" | "stderr") => void
  /** How much of its latest output is kept for error messages, in characters (8000 by default). */
  readonly tailChars?: number
}

/** A spawned child process. */
export interface Child {
  readonly name: string
  readonly pid: number | undefined
  /** The underlying process (its stdin when spawned with `stdin: "pipe"`). */
  readonly process: ChildProcess
  /** Its latest output (stdout and stderr as printed), for error messages. */
  output(): string
  /** How it ended; undefined while it runs. */
  readonly exit: Exit | undefined
  /** Resolves once it has exited and what it printed has been read. */
  readonly exited: Promise<Exit>
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs` (5 s by default); resolves once it has exited. */
  stop(graceMs?: number): Promise<Exit>
}

// Children still running when this process exits (an uncaught error, process.exit) are killed: none outlives it.
const running = new Set<Child>()
let exitHookInstalled = false
const killLeftovers = () => {
  for (const child of running) if (child.exit === undefined) child.process.kill("SIGKILL")
}

export const spawnChild = (options: SpawnOptions): Child => {
  const tailChars = options.tailChars ?? 8_000
  const env = Object.fromEntries(
    Object.entries(options.env ?? process.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  )
  const proc = spawn(options.command ?? process.execPath, [...options.args], {
    cwd: options.cwd,
    env,
    stdio: [options.stdin ?? "ignore", options.stdout === "ignore" ? "ignore" : "pipe", "pipe"],
  })
  let tail = ""
  let exit: Exit | undefined
  const keep = (line: string) => {
    tail = `${tail}${line}\n`.slice(-tailChars)
  }
  for (const [stream, input] of [
    ["stdout", proc.stdout],
    ["stderr", proc.stderr],
  ] as const) {
    if (input === null) continue
    createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY }).on("line", (line) => {
      keep(line)
      if (options.label !== undefined) process.stdout.write(`${options.label}${line}\n`)
      options.onLine?.(line, stream)
    })
  }
  // A child that has exited reads no more: writing to it fails with EPIPE, which is not this process's error.
  proc.stdin?.on("error", () => {})

  const exited = new Promise<Exit>((resolve) => {
    const settle = () => {
      if (exit === undefined) return
      running.delete(child)
      resolve(exit)
    }
    proc.once("exit", (code, signal) => {
      exit = { code, signal }
      // 'close' follows once its output is read; something else holding its pipes (a grandchild) must not hold us.
      setTimeout(settle, 1_000).unref()
    })
    proc.once("close", settle)
    // Could not be started (no such program, no such directory): nothing will exit. Later errors (a signal that could
    // not be sent) leave it running as it was.
    proc.on("error", (error) => {
      if (proc.pid !== undefined) return
      keep(`could not start ${options.name}: ${error.message}`)
      exit = { code: null, signal: null }
      settle()
    })
  })

  const child: Child = {
    name: options.name,
    pid: proc.pid,
    process: proc,
    output: () => tail,
    get exit() {
      return exit
    },
    exited,
    stop: async (graceMs = 5_000) => {
      if (exit !== undefined) return exited
      proc.kill("SIGTERM")
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs)
      const done = await exited
      clearTimeout(timer)
      return done
    },
  }
  running.add(child)
  if (!exitHookInstalled) {
    exitHookInstalled = true
    process.once("exit", killLeftovers)
  }
  return child
}

/**
 * Stops every child, the last started first: each gets SIGTERM at once (dependents before their dependencies) and
 * SIGKILL if it has not exited after `graceMs`; they drain together, so this takes as long as the slowest.
 */
export const stopAll = async (children: Iterable<Child>, graceMs?: number): Promise<void> => {
  await Promise.all([...children].reverse().map((child) => child.stop(graceMs)))
}

/** The child exited, or the URL did not answer 2xx in time; `output` is the child's latest output. */
export class NotReady extends Error {
  readonly reason: string
  readonly output: string
  constructor(name: string, reason: string, output: string) {
    super(`${name} ${reason}${output ? `:\n${output}` : ""}`)
    this.name = "NotReady"
    this.reason = reason
    this.output = output
  }
}

// One GET without keep-alive: the status, or 0 and why when nothing answered. A 2xx resolves at its headers (the
// cold-start bench times to that moment); anything else with the start of its body, for the error message.
const probe = (url: string, timeoutMs: number): Promise<{ status: number; text: string }> =>
  new Promise((resolve) => {
    const request = get(url, { agent: false, timeout: timeoutMs }, (response) => {
      const status = response.statusCode ?? 0
      if (status >= 200 && status < 300) {
        response.resume()
        return resolve({ status, text: String(status) })
      }
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        if (body.length < 300) body += chunk
      })
      response.on("end", () => resolve({ status, text: `${status} ${body.slice(0, 300)}` }))
      response.on("error", () => resolve({ status, text: `${status} ${body.slice(0, 300)}` }))
    })
    request.on("timeout", () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    request.on("error", (error) => resolve({ status: 0, text: error.message }))
  })

/**
 * Polls `url` until it answers 2xx. Throws NotReady after `timeoutMs` (60 s by default), or as soon as `child` exits
 * (when given: a process that is restarted by its supervisor may still come up, so it is left out there).
 */
export const waitForHttp = async (
  url: string,
  options: {
    readonly child?: Child
    readonly timeoutMs?: number
    /** Between attempts (100 ms by default). */
    readonly intervalMs?: number
    /** For each attempt (1 s by default). */
    readonly requestTimeoutMs?: number
  } = {},
): Promise<void> => {
  const { child, timeoutMs = 60_000, intervalMs = 100, requestTimeoutMs = 1_000 } = options
  const name = child?.name ?? url
  const started = performance.now()
  let last = ""
  while (true) {
    if (child?.exit !== undefined) {
      const exit = await child.exited
      throw new NotReady(name, `exited (${describeExit(exit)}) before ready`, child.output())
    }
    const answer = await probe(url, requestTimeoutMs)
    if (answer.status >= 200 && answer.status < 300) return
    last = answer.text
    if (performance.now() - started > timeoutMs) {
      throw new NotReady(name, `not ready after ${timeoutMs} ms (last answer: ${last})`, child?.output() ?? "")
    }
    await sleep(intervalMs)
  }
}
