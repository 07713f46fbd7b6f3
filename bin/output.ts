// How `platform` prints: tables and colours for people (colours only on a terminal), the API's JSON as is for scripts
// (`--json`: stdout holds JSON and nothing else), messages and progress on stderr.
import Table from "cli-table3"
import ora from "ora"
import { createColors } from "picocolors"
import type { CliError } from "./exit.ts"

type Colors = ReturnType<typeof createColors>

/** Whether to colour what goes to `stream`: a terminal, unless NO_COLOR says no (FORCE_COLOR says yes anyway). */
const colourful = (stream: NodeJS.WriteStream) =>
  "FORCE_COLOR" in process.env || (stream.isTTY === true && !("NO_COLOR" in process.env) && process.env.TERM !== "dumb")

export interface Output {
  /** `--json`: print the API's JSON on stdout, no tables. */
  readonly json: boolean
  /** Colours for stdout (no-ops when it is not a terminal). */
  readonly c: Colors
  /** A line on stdout. */
  line(text?: string): void
  /** `value` as JSON on stdout (indented, or one line with `compact`: one record per line when following). */
  printJson(value: unknown, compact?: boolean): void
  /** Rows under a header as a table on stdout; a note when there are none. */
  table(head: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null>>): void
  /** Name/value pairs as a two-column table on stdout. */
  pairs(rows: ReadonlyArray<readonly [string, string | number | boolean | null]>): void
  /** A message for the person at the terminal, on stderr (never mixed into stdout's JSON). */
  note(text: string): void
  /** A failure on stderr: the message and its details, or under `--json` the problem+json as one line. */
  fail(error: CliError): void
  /**
   * `run` with a spinner on stderr saying `text` (only when stderr is a terminal); `run` may change the text as it
   * goes (pages fetched so far). The spinner stops, whatever `run` does.
   */
  progress<A>(text: string, run: (update: (text: string) => void) => Promise<A>): Promise<A>
}

export const makeOutput = (json: boolean): Output => {
  const c = createColors(colourful(process.stdout))
  const e = createColors(colourful(process.stderr))
  const write = (text: string) => process.stdout.write(`${text}\n`)
  const cell = (value: string | number | boolean | null) =>
    value === null ? c.dim("–") : typeof value === "boolean" ? (value ? "yes" : "no") : String(value)
  return {
    json,
    c,
    line: (text = "") => write(text),
    printJson: (value, compact = false) => write(JSON.stringify(value, null, compact ? undefined : 2)),
    table: (head, rows) => {
      if (rows.length === 0) {
        process.stderr.write(`${e.dim("(none)")}\n`)
        return
      }
      // cli-table3 colours its header and borders by itself, whatever the stream: off, ours instead.
      const table = new Table({ head: head.map((h) => c.bold(h)), style: { head: [], border: [], compact: true } })
      for (const row of rows) table.push(row.map(cell))
      write(table.toString())
    },
    pairs: (rows) => {
      const table = new Table({ style: { head: [], border: [], compact: true } })
      for (const [name, value] of rows) table.push({ [c.bold(name)]: cell(value) })
      write(table.toString())
    },
    note: (text) => process.stderr.write(`${text}\n`),
    fail: (error) => {
      if (json && error.problem !== undefined) {
        process.stderr.write(`${JSON.stringify(error.problem)}\n`)
        return
      }
      process.stderr.write(`${e.red("error:")} ${error.message}\n`)
      for (const detail of error.details) process.stderr.write(`  ${detail}\n`)
    },
    progress: async (text, run) => {
      // `isSilent` off a terminal: no spinner frames and no text in a pipe or a log. A terminal that reports no width
      // (a bare pseudo-terminal) gets none either: ora would erase an endless number of lines on it.
      const terminal = process.stderr.isTTY === true && (process.stderr.columns ?? 0) > 0
      const spinner = ora({ text, stream: process.stderr, isSilent: !terminal, discardStdin: false })
      spinner.start()
      try {
        return await run((next) => {
          spinner.text = next
        })
      } finally {
        spinner.stop()
      }
    },
  }
}

/** An RFC 3339 time as `2026-01-31 12:00:00` (UTC), the way tables show times; `null` stays `null`. */
export const when = (iso: string | null): string | null =>
  iso === null
    ? null
    : new Date(iso)
        .toISOString()
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z")

/** An amount in a currency's minor unit as `12.34 EUR` (JPY has no minor unit, KWD three: the currency says). */
export const money = (amount: number, currency: string | null): string => {
  if (currency === null) return String(amount)
  const digits =
    new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2
  return `${(amount / 10 ** digits).toFixed(digits)} ${currency}`
}
