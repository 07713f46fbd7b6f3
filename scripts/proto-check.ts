// Fails when proto/gen is not what `npm run proto:gen` produces from proto/ (generated code must be committed current).
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"

const files = (root: string): Array<string> =>
  readdirSync(root).flatMap((name) => {
    const path = join(root, name)
    return statSync(path).isDirectory() ? files(path) : [path]
  })

const out = mkdtempSync(join(tmpdir(), "proto-check-"))
try {
  execFileSync("npx", ["buf", "generate", "--output", out], { cwd: "proto", stdio: "inherit" })
  const fresh = new Map(files(join(out, "gen")).map((f) => [relative(join(out, "gen"), f), readFileSync(f, "utf8")]))
  const committed = new Map(files("proto/gen").map((f) => [relative("proto/gen", f), readFileSync(f, "utf8")]))
  const stale = [...new Set([...fresh.keys(), ...committed.keys()])].filter((f) => fresh.get(f) !== committed.get(f))
  if (stale.length > 0) {
    console.error(`proto/gen is stale (${stale.join(", ")}): run \`npm run proto:gen\` and commit the result`)
    process.exit(1)
  }
  console.log(`proto/gen is current (${fresh.size} files)`)
} finally {
  rmSync(out, { recursive: true, force: true })
}
