#!/usr/bin/env node
// Runs a command with Node 24 first on PATH, so that the README's commands work on a machine that has only an older
// Node (>= 18) and npm: when the running Node is older than 24, Node 24 is installed once from the npm registry's
// `node-<platform>-<arch>@24` package into ~/.cache/platform-node24 (NODE24_DIR), and the command runs with it.
// Plain JavaScript on purpose: it must run on the old Node that cannot run the project's TypeScript.
//   node scripts/node24.mjs <command> [args...]
import { execFileSync, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { homedir } from "node:os"
import { delimiter, dirname, join } from "node:path"

const [command, ...args] = process.argv.slice(2)
if (!command) {
  process.stderr.write("usage: node scripts/node24.mjs <command> [args...]\n")
  process.exit(2)
}

const major = Number(process.versions.node.split(".")[0])
let bin = dirname(process.execPath)
if (major < 24) {
  const dir = process.env.NODE24_DIR || join(homedir(), ".cache", "platform-node24")
  const platform = process.platform === "win32" ? "win" : process.platform
  const pkg = `node-${platform}-${process.arch}`
  const binDir = join(dir, "node_modules", pkg, "bin")
  if (!existsSync(join(binDir, process.platform === "win32" ? "node.exe" : "node"))) {
    process.stderr.write(`Node ${process.versions.node} is older than 24: installing ${pkg}@24 into ${dir}\n`)
    execFileSync(
      process.platform === "win32" ? "npm.cmd" : "npm",
      ["install", "--prefix", dir, "--no-save", "--no-audit", "--no-fund", "--loglevel=error", `${pkg}@24`],
      { stdio: ["ignore", "ignore", "inherit"] },
    )
  }
  bin = binDir
}

const child = spawn(command, args, {
  stdio: "inherit",
  env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ""}` },
  shell: process.platform === "win32",
})
// The command handles signals itself (npm start drains on Ctrl-C): pass them on and wait for it.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal))
child.on("error", (error) => {
  process.stderr.write(`${command}: ${error.message}\n`)
  process.exit(1)
})
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
