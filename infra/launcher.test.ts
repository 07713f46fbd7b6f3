// The README's commands on a machine whose Node is older than 24: scripts/node24.mjs (plain JavaScript) runs them with
// Node 24 from the npm registry. Checked with the machine's own older Node when it has one (these machines ship 20).
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { describe, expect, it } from "vitest"

const older = ["/usr/bin/node", "/usr/local/bin/node"].find(
  (path) => existsSync(path) && Number(spawnSync(path, ["-p", "process.versions.node.split('.')[0]"]).stdout) < 24,
)

describe("scripts/node24.mjs", () => {
  it.runIf(older !== undefined)(
    "runs a command with Node 24 from an older Node, passing its exit code",
    () => {
      const version = spawnSync(older!, ["scripts/node24.mjs", "node", "-p", "process.versions.node"], {
        encoding: "utf8",
      })
      expect(version.status, version.stderr).toBe(0)
      expect(Number(version.stdout.trim().split(".")[0])).toBeGreaterThanOrEqual(24)
      expect(spawnSync(older!, ["scripts/node24.mjs", "node", "-e", "process.exit(3)"]).status).toBe(3)
    },
    120_000,
  )

  it("refuses to run without a command", () => {
    expect(spawnSync(process.execPath, ["scripts/node24.mjs"]).status).toBe(2)
  })
})
