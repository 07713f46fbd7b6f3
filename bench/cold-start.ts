// Cold start of every function: bundled, bundled with a warm compile cache, and unbundled, against bare node:http.
//   node bench/cold-start.ts [--runs N] [name...]
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { parseArgs, parseEnv } from "node:util"
import pg from "pg"
import { build, discover, formatReport, ROOT } from "../scripts/build.ts"
import { type Case, run, table } from "./lib.ts"

const MAX_BUNDLE_BYTES = 1.5 * 1024 * 1024
const MAX_RATIO = 2.5
const clean = { NODE_OPTIONS: undefined, NODE_COMPILE_CACHE: undefined }

// DATABASE_URL (and friends) from the environment first, then from .env.test written by infra/up.sh.
const serviceEnv = (): Record<string, string | undefined> => {
  const file = join(ROOT, ".env.test")
  const fromFile = existsSync(file) ? (parseEnv(readFileSync(file, "utf8")) as Record<string, string>) : {}
  const databaseUrl = process.env.DATABASE_URL ?? fromFile.DATABASE_URL
  if (!databaseUrl) {
    process.stderr.write("bench: set DATABASE_URL or run `bash infra/up.sh` (writes .env.test) first\n")
    process.exit(1)
  }
  // Inherited flags would skew the figures (undefined unsets); each case sets its own compile cache.
  // auth seals its signing keys with KEY_ENCRYPTION_KEY (required; any 32 random bytes do for a start).
  const keyEncryptionKey = process.env.KEY_ENCRYPTION_KEY ?? randomBytes(32).toString("base64")
  return {
    ...fromFile,
    DATABASE_URL: databaseUrl,
    KEY_ENCRYPTION_KEY: keyEncryptionKey,
    // Not "production": that refuses development defaults (the embedded bus, the dev mailbox, dev service keys) this
    // bench relies on; the code paths it times are the same.
    NODE_ENV: "test",
    ...clean,
  }
}

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: { runs: { type: "string", default: process.env.BENCH_RUNS ?? "10" } },
  allowPositionals: true,
})
const runs = Math.max(1, Number(values.runs))
const names = positionals.length > 0 ? positionals : discover()

const env = serviceEnv()
// Each function in a schema of the bench's own, made afresh by the first (warm-up) start of each run: auth's signing
// keys there are sealed with this run's KEY_ENCRYPTION_KEY (the default schema may hold keys sealed with another).
const schemaOf = (name: string) => `bench_cold_${name.replaceAll("-", "_")}`
const dropSchemas = async () => {
  const client = new pg.Client({ connectionString: env.DATABASE_URL })
  await client.connect()
  try {
    for (const name of names) await client.query(`DROP SCHEMA IF EXISTS ${schemaOf(name)} CASCADE`)
  } finally {
    await client.end()
  }
}
await dropSchemas()
const reports = await build(names)
console.log(`${formatReport(reports)}\n`)

const cacheDirs: Array<string> = []
const node = process.execPath
const cases: Array<Case> = [
  {
    name: "bare node:http (baseline)",
    command: node,
    args: [join(ROOT, "bench/fixtures/bare-http.mjs")],
    url: "http://127.0.0.1:{port}/healthz",
    env: clean,
    warmups: 1,
    baseline: true,
  },
  {
    name: "bare node:http, no ESM facade (floor)",
    command: node,
    args: [join(ROOT, "bench/fixtures/bare-http-builtin.mjs")],
    url: "http://127.0.0.1:{port}/healthz",
    env: clean,
    warmups: 1,
  },
]
for (const name of names) {
  const bundle = join(ROOT, "dist", name, "main.mjs")
  // Bytes a start loads: main.mjs and the chunks it imports statically (lazy chunks load only when used).
  const startBytes = reports.find((r) => r.name === name)?.outputs.find((o) => o.entry === "main")?.bytes ?? 0
  const cacheDir = mkdtempSync(join(tmpdir(), `compile-cache-${name}-`))
  cacheDirs.push(cacheDir)
  const common = { url: "http://127.0.0.1:{port}/healthz", cwd: ROOT, warmups: 1 }
  cases.push(
    {
      ...common,
      name: `${name} bundled`,
      command: node,
      args: [bundle],
      env: { ...env, DB_SCHEMA: schemaOf(name) },
      bytes: startBytes,
      target: { label: `≤ ${MAX_RATIO}×`, ok: (median, base) => median <= MAX_RATIO * base },
    },
    {
      ...common,
      name: `${name} bundled + warm compile cache`,
      command: node,
      args: [bundle],
      env: { ...env, DB_SCHEMA: schemaOf(name), NODE_COMPILE_CACHE: cacheDir },
      bytes: startBytes,
      target: { label: `≤ ${MAX_RATIO}×`, ok: (median, base) => median <= MAX_RATIO * base },
    },
    {
      ...common,
      name: `${name} unbundled (type stripping)`,
      command: node,
      args: [join(ROOT, "functions", name, "main.ts")],
      env: { ...env, DB_SCHEMA: schemaOf(name) },
    },
  )
}

console.log(`cold start: ${cases.length} cases × ${runs} runs (interleaved), spawn → first 200 on /healthz`)
try {
  const tty = process.stderr.isTTY
  const results = await run(cases, runs, (round) => tty && process.stderr.write(`\r  round ${round}/${runs}`))
  if (tty) process.stderr.write("\n")
  console.log("")
  console.log(table(results))
  console.log("\nbundle sizes:")
  for (const r of reports) {
    for (const o of r.outputs) {
      const verdict = o.bytes <= MAX_BUNDLE_BYTES ? "ok" : "MISSED"
      console.log(
        `  ${r.name}/${o.entry}.mjs  ${(o.bytes / 1024).toFixed(0)} KB at start + ${(o.lazyBytes / 1024).toFixed(0)} KB lazy chunks  (target ≤ 1.5 MB at start: ${verdict})`,
      )
    }
  }
  for (const r of results) {
    for (const f of r.failures.slice(0, 3)) console.log(`\n${r.case.name} failed: ${f}`)
  }
} finally {
  for (const dir of cacheDirs) rmSync(dir, { recursive: true, force: true })
  await dropSchemas()
}
