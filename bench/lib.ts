// A small cold-start harness: spawn a command, time spawn -> first HTTP 200, repeat, summarise.
import { NotReady, spawnChild, waitForHttp } from "../scripts/lib/processes.ts"
import { freePort } from "../shared/testing/ports.ts"

/**
 * One thing to start and time. Every spawn gets free ports in HTTP_PORT and GRPC_PORT; `{port}` in `url` is the
 * HTTP one.
 */
export interface Case {
  readonly name: string
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly url: string
  readonly env?: Record<string, string | undefined>
  readonly cwd?: string
  /** Bytes of the artefact started (shown in the table), if it is one file. */
  readonly bytes?: number
  /** Runs before the timed ones, not counted (e.g. to warm a compile cache). */
  readonly warmups?: number
  /** Marks the row against which others are compared. */
  readonly baseline?: boolean
  /** Printed next to the figures, e.g. "≤ 2.5× baseline". Targets are reported, never enforced. */
  readonly target?: { readonly label: string; readonly ok: (median: number, baseline: number) => boolean }
}

/** Timed samples of one case. */
export interface Result {
  readonly case: Case
  readonly samples: ReadonlyArray<number>
  readonly failures: ReadonlyArray<string>
}

/** Milliseconds from spawn to the first 200 on the case's URL (polled every `pollMs`); the process is stopped after. */
export const readyTime = async (c: Case, options: { pollMs?: number; timeoutMs?: number } = {}): Promise<number> => {
  const { pollMs = 5, timeoutMs = 15_000 } = options
  const port = await freePort()
  const grpcPort = await freePort()
  const url = c.url.replaceAll("{port}", String(port))
  const started = performance.now()
  const child = spawnChild({
    name: c.name,
    command: c.command,
    args: c.args,
    cwd: c.cwd,
    env: { ...process.env, ...c.env, HTTP_PORT: String(port), GRPC_PORT: String(grpcPort) },
    stdout: "ignore",
    tailChars: 2_000,
  })
  try {
    await waitForHttp(url, { child, timeoutMs, intervalMs: pollMs, requestTimeoutMs: 100 }).catch((e: unknown) => {
      // The table names the case: the failure says only what went wrong and what the process printed.
      throw e instanceof NotReady ? new Error(`${e.reason}: ${e.output.trim()}`) : e
    })
    return performance.now() - started
  } finally {
    await child.stop()
  }
}

/** The q-quantile (0..1) of samples, interpolated. */
export const quantile = (samples: ReadonlyArray<number>, q: number): number => {
  if (samples.length === 0) return Number.NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const at = (sorted.length - 1) * q
  const lo = Math.floor(at)
  const hi = Math.ceil(at)
  return (sorted[lo] ?? 0) + ((sorted[hi] ?? 0) - (sorted[lo] ?? 0)) * (at - lo)
}

/**
 * Runs every case `runs` times, interleaved (round-robin), so that load changes on the machine hit every case
 * alike. Warm-up runs happen first and are not counted. Failed runs are recorded, not thrown.
 */
export const run = async (
  cases: ReadonlyArray<Case>,
  runs: number,
  onProgress: (round: number) => void = () => {},
): Promise<Array<Result>> => {
  const results = cases.map((c) => ({ case: c, samples: [] as Array<number>, failures: [] as Array<string> }))
  for (const r of results) {
    for (let i = 0; i < (r.case.warmups ?? 0); i++) {
      await readyTime(r.case).catch((e: unknown) => r.failures.push(`warm-up: ${String(e)}`))
    }
  }
  for (let round = 1; round <= runs; round++) {
    for (const r of results) {
      await readyTime(r.case).then(
        (ms) => r.samples.push(ms),
        (e: unknown) => r.failures.push(e instanceof Error ? e.message : String(e)),
      )
    }
    onProgress(round)
  }
  return results
}

const fmt = (ms: number) => (Number.isFinite(ms) ? ms.toFixed(1) : "-")
const size = (bytes: number | undefined) =>
  bytes === undefined
    ? ""
    : bytes >= 1024 * 1024
      ? `${(bytes / 1024 / 1024).toFixed(2)} MB`
      : `${(bytes / 1024).toFixed(0)} KB`

/** A table of median/p90/min ready times with the ratio of each median to the baseline's and its target. */
export const table = (results: ReadonlyArray<Result>): string => {
  const baseline = results.find((r) => r.case.baseline) ?? results[0]
  const base = baseline ? quantile(baseline.samples, 0.5) : Number.NaN
  const header = ["case", "n", "median ms", "p90 ms", "min ms", "× baseline", "size", "target"]
  const rows = results.map((r) => {
    const median = quantile(r.samples, 0.5)
    const target = r.case.target
    const verdict =
      target && Number.isFinite(median) ? `${target.label} ${target.ok(median, base) ? "ok" : "MISSED"}` : ""
    return [
      r.case.name,
      `${r.samples.length}${r.failures.length > 0 ? ` (${r.failures.length} failed)` : ""}`,
      fmt(median),
      fmt(quantile(r.samples, 0.9)),
      fmt(Math.min(...r.samples)),
      r === baseline ? "1.00" : (median / base).toFixed(2),
      size(r.case.bytes),
      verdict,
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)))
  const numeric = new Set([1, 2, 3, 4, 5, 6])
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}
