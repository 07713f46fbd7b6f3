import { readdirSync, readFileSync } from "node:fs"
import { join, relative, resolve } from "node:path"
import { describe, expect, it } from "vitest"

// The kernel is infrastructure only: it imports nothing of a function or of the system tests, and its code names no
// function (a function's topic, event types, paths and addresses are that function's facts, passed in as parameters).
const KERNEL = import.meta.dirname
const ROOT = resolve(KERNEL, "..")
const FUNCTIONS = readdirSync(join(ROOT, "functions"), { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .map((entry) => entry.name)

const kernelFiles = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? kernelFiles(join(dir, entry.name))
      : entry.name.endsWith(".ts")
        ? [join(dir, entry.name)]
        : [],
  )
const files = kernelFiles(KERNEL)

/** The code without its comments (a comment may well say "auth's keys"). */
const code = (text: string) => text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:\\])\/\/.*$/gm, "$1")

/** Where every import and dynamic import of a file points, resolved from the repository's root. */
const importsOf = (file: string, text: string) =>
  [...code(text).matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)]
    .map((m) => m[1]!)
    .filter((specifier) => specifier.startsWith("."))
    .map((specifier) => relative(ROOT, resolve(file, "..", specifier)))

/** String literals (quotes or backticks) that are a function's name, or start with it and a dot (`auth.events`). */
const functionNamesIn = (text: string) =>
  [...code(text).matchAll(/(?<!\[)(["'`])([a-z][a-z0-9-]*)(\.[^"'`]*)?\1/g)]
    .filter((m) => FUNCTIONS.includes(m[2]!))
    .map((m) => m[0])

describe("the kernel (shared/) is infrastructure only", () => {
  it("finds the functions and its own files (the checks below look at something)", () => {
    expect(FUNCTIONS).toContain("auth")
    expect(files.map((f) => relative(KERNEL, f))).toContain(join("access", "SessionRevocations.ts"))
  })

  it("imports nothing of a function's folder or of the system tests", () => {
    const crossing = files.flatMap((file) =>
      importsOf(file, readFileSync(file, "utf8"))
        .filter((target) => /^(functions|e2e)(\/|$)/.test(target))
        .map((target) => `${relative(ROOT, file)} -> ${target}`),
    )
    expect(crossing).toEqual([])
  })

  it("names no function in its code (tests may use them as sample data)", () => {
    const named = files
      .filter((file) => !file.endsWith(".test.ts"))
      .flatMap((file) => functionNamesIn(readFileSync(file, "utf8")).map((hit) => `${relative(ROOT, file)}: ${hit}`))
    expect(named).toEqual([])
  })

  it("would see a name or an import that crept back", () => {
    expect(functionNamesIn(`topicOf("auth")`)).toEqual([`"auth"`])
    expect(functionNamesIn("type: 'auth.session.revoked'")).toEqual(["'auth.session.revoked'"])
    expect(functionNamesIn(`// topicOf("auth")\nconst x = RouteSpec["auth"]`)).toEqual([])
    const registry = ["functions", "registry.ts"].join("/")
    expect(importsOf(join(KERNEL, "X.ts"), `import { manifests } from "../${registry}"`)).toEqual([registry])
  })
})
