// A freshly initialised PGlite cluster, kept as a tarball next to the installed packages: `initdb` costs ≈ 4.5 s of
// one core, restoring the tarball ≈ 1 s. `npm ci` / `npm install` make it once (postinstall); a new data folder
// starts from it. Tied to the installed PGlite version: another version makes (and uses) its own.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"

const ROOT = join(import.meta.dirname, "..", "..")
const pgliteVersion = (): string =>
  (
    JSON.parse(readFileSync(join(ROOT, "node_modules", "@electric-sql", "pglite", "package.json"), "utf8")) as {
      version: string
    }
  ).version

/** Where the template of the installed PGlite version lives. */
export const templatePath = (): string =>
  join(ROOT, "node_modules", ".cache", "platform", `pglite-${pgliteVersion()}-initdb.tar.gz`)

/** The template's bytes, or undefined when it was never made (`npm ci --ignore-scripts`). */
export const readTemplate = (): Blob | undefined => {
  const path = templatePath()
  return existsSync(path) ? new Blob([readFileSync(path)]) : undefined
}

/** Makes the template unless it exists: an in-memory initdb, dumped gzipped; written atomically. */
export const makeTemplate = async (): Promise<{ readonly path: string; readonly made: boolean }> => {
  const path = templatePath()
  if (existsSync(path)) return { path, made: false }
  const { PGlite } = await import("@electric-sql/pglite")
  const db = await PGlite.create({ dataDir: "memory://" })
  try {
    const dump = Buffer.from(await (await db.dumpDataDir("gzip")).arrayBuffer())
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(`${path}.tmp`, dump)
    renameSync(`${path}.tmp`, path)
    return { path, made: true }
  } finally {
    await db.close()
  }
}
