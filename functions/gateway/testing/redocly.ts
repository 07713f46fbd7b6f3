import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const ROOT = join(import.meta.dirname, "..", "..", "..")

/**
 * Runs `redocly lint` (the pinned @redocly/cli, the repository's redocly.yaml: the recommended rules) on a document;
 * `clean` is true when it finds no error and no warning. Telemetry and update checks are off (no network).
 */
export const redoclyLint = (document: unknown): { readonly clean: boolean; readonly output: string } => {
  const dir = mkdtempSync(join(tmpdir(), "openapi-lint-"))
  try {
    const file = join(dir, "openapi.json")
    writeFileSync(file, JSON.stringify(document, null, 2))
    const run = spawnSync(
      process.execPath,
      [
        join(ROOT, "node_modules/@redocly/cli/bin/cli.js"),
        "lint",
        file,
        "--config",
        join(ROOT, "redocly.yaml"),
        "--format",
        "stylish",
      ],
      {
        cwd: ROOT,
        encoding: "utf8",
        env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true", NO_COLOR: "1" },
        timeout: 60_000,
      },
    )
    const output = `${run.stdout}\n${run.stderr}`
    const clean = run.status === 0 && /Your API description is valid/.test(output) && !/warning|error/i.test(output)
    return { clean, output }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
