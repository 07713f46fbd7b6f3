// Bundles every function's container entry (main.ts) and Lambda entry (lambda.ts) into dist/<name>/ with esbuild.
import { existsSync, readdirSync } from "node:fs"
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises"
import { builtinModules, createRequire } from "node:module"
import { basename, dirname, join, relative, resolve } from "node:path"
import * as esbuild from "esbuild"
import { manifests as registry } from "../functions/registry.ts"
import { bundleBrowser } from "../shared/BrowserBundle.ts"
import { isBrowserAssets } from "../shared/Module.ts"

/** Repository root (this file lives in scripts/). */
export const ROOT = resolve(import.meta.dirname, "..")

// ESM output has no `require`, `__filename` or `__dirname`; CommonJS dependencies (pg, pino, grpc-js, ...) use
// them. The import is aliased to a name no bundled module uses; `require` itself must keep its name (esbuild's
// `__require` shim looks it up), and esbuild never gives a bundled symbol a name the bundle references freely.
const BANNER = [
  'import { createRequire as __platform_createRequire } from "node:module";',
  "const require = __platform_createRequire(import.meta.url);",
  "const __filename = import.meta.filename, __dirname = import.meta.dirname;",
].join("")

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))

/**
 * Turns `import ... from "node:http"` (and every other builtin) into `require("node:http")`. Node 24 builds an ESM
 * facade for an imported builtin by reading every export, and `node:http`'s lazy getters (WebSocket, ...) then load
 * undici: ~60 ms of a bare server's start here, ~50 ms of a function's. Builtins are plain objects: nothing is lost.
 */
export const builtinsViaRequire: esbuild.Plugin = {
  name: "builtins-via-require",
  setup(build) {
    build.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) =>
      args.kind === "import-statement" && BUILTINS.has(args.path)
        ? { path: args.path, namespace: "builtin-require" }
        : undefined,
    )
    build.onLoad({ filter: /.*/, namespace: "builtin-require" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)})`,
      loader: "js",
    }))
  },
}

/**
 * effect's HttpApiScalar and HttpApiSwagger import their UIs (3.2 MB and 1.9 MB of JavaScript) lazily from the
 * `effect/http-api` barrel; no function serves them (the gateway serves Swagger UI's own static files), so their
 * chunks would only be dead weight in every bundle. They resolve to a module that says so if it is ever loaded.
 */
export const withoutApiDocUis: esbuild.Plugin = {
  name: "without-api-doc-uis",
  setup(build) {
    build.onResolve({ filter: /internal\/httpApi(Scalar|Swagger)\.js$/ }, (args) => ({
      path: args.path,
      namespace: "api-doc-ui",
    }))
    build.onLoad({ filter: /.*/, namespace: "api-doc-ui" }, () => ({
      contents: `throw new Error("effect's API documentation UIs are not bundled (scripts/build.ts)")`,
      loader: "js",
    }))
  },
}

/**
 * Native addons (argon2) cannot live inside a JS file: each .node file is copied to the function's folder and
 * required by an absolute path from there. A relative require would resolve against the file whose `require` runs it
 * (esbuild's shared `__require` shim sits in a chunk under chunks/), not against the entry, and fail in Lambda.
 */
const nativeAddons = (outdir: string): esbuild.Plugin => ({
  name: "native-addons",
  setup(build) {
    build.onLoad({ filter: /\.node$/ }, async (args) => {
      const file = basename(args.path)
      await mkdir(outdir, { recursive: true })
      await copyFile(args.path, join(outdir, file))
      return {
        contents: [
          'const { basename, dirname, join } = require("node:path");',
          'const root = basename(__dirname) === "chunks" ? dirname(__dirname) : __dirname;',
          `module.exports = require(join(root, ${JSON.stringify(file)}));`,
        ].join("\n"),
        loader: "js",
      }
    })
  },
})

/**
 * The functions to bundle: every function of the registry (functions/registry.ts), sorted. Each has a container entry
 * (functions/<name>/main.ts) and may have a Lambda entry (lambda.ts): a convention functions/registry.test.ts checks.
 */
export const discover = (): Array<string> => registry.map((m) => m.name).sort()

/** Size and composition of one bundled entry. */
export interface OutputReport {
  readonly entry: "main" | "lambda"
  readonly file: string
  /** Bytes loaded at start: the entry file and the chunks it imports statically. */
  readonly bytes: number
  /** Bytes of the chunks the entry loads only when it needs them (dynamic imports). */
  readonly lazyBytes: number
  /** Bytes in the output by npm package (own code under `(own)`), largest first. */
  readonly packages: ReadonlyArray<{ readonly name: string; readonly bytes: number }>
}

/** What building one function produced. */
export interface BuildReport {
  readonly name: string
  readonly outdir: string
  readonly outputs: ReadonlyArray<OutputReport>
  readonly warnings: ReadonlyArray<esbuild.Message>
}

/** Options of {@link build}. */
export interface BuildOptions {
  /** Where `<name>/main.mjs` goes; default `dist/` of the repository. */
  readonly outdir?: string
}

// "node_modules/@aws-sdk/client-s3/dist-es/x.js" -> "@aws-sdk/client-s3"; the innermost node_modules wins.
const packageOf = (input: string): string => {
  const at = input.lastIndexOf("node_modules/")
  if (at === -1) return "(own)"
  const [first = "", second = ""] = input.slice(at + "node_modules/".length).split("/")
  return first.startsWith("@") ? `${first}/${second}` : first
}

const byPackage = (output: esbuild.Metafile["outputs"][string]) => {
  const sizes = new Map<string, number>()
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const name = packageOf(input)
    sizes.set(name, (sizes.get(name) ?? 0) + bytesInOutput)
  }
  return [...sizes].map(([name, bytes]) => ({ name, bytes })).sort((a, b) => b.bytes - a.bytes)
}

/** Bundles one function into `<outdir>/<name>/` (main.mjs, lambda.mjs when present, maps, meta.json). */
export const buildOne = async (name: string, options: BuildOptions = {}): Promise<BuildReport> => {
  // The functions come from the registry (one discovery), so the repository is the only root.
  const root = ROOT
  const dir = join(root, "functions", name)
  const outdir = join(options.outdir ?? join(root, "dist"), name)
  const entries: Array<OutputReport["entry"]> = ["main"]
  if (existsSync(join(dir, "lambda.ts"))) entries.push("lambda")
  await rm(outdir, { recursive: true, force: true })
  await mkdir(outdir, { recursive: true })
  // One build per entry with code splitting: what an entry imports statically stays in its file, and what it
  // imports dynamically (grpc-js, kafkajs, nodemailer: loaded only when used) goes to chunks/ beside it.
  const results = await Promise.all(
    entries.map((entry) =>
      esbuild.build({
        absWorkingDir: root,
        entryPoints: { [entry]: join(dir, `${entry}.ts`) },
        outdir,
        outExtension: { ".js": ".mjs" },
        chunkNames: `chunks/${entry}-[name]-[hash]`,
        splitting: true,
        platform: "node",
        format: "esm",
        target: "node24",
        bundle: true,
        minify: true,
        sourcemap: "linked",
        // Mappings only: stack traces (--enable-source-maps) need no embedded sources; the map drops from ~11 MB to ~1.5 MB.
        sourcesContent: false,
        treeShaking: true,
        legalComments: "none",
        banner: { js: BANNER },
        // pino-pretty: development only, loaded lazily by shared/Logging.ts. @grpc/proto-loader (+ protobufjs, 140 KB):
        // grpc-js requires it only to serve channelz/ORCA, from .proto files that a bundle does not carry anyway.
        // esbuild: a function running from source bundles its browser application (shared/BrowserBundle.ts) with it; a
        // bundle carries that application prebuilt and never loads it.
        // @graphql-yoga/render-graphiql (9 MB): the gateway serves GraphiQL in development only, never from a bundle.
        external: ["pino-pretty", "@grpc/proto-loader", "esbuild", "@graphql-yoga/render-graphiql"],
        plugins: [builtinsViaRequire, withoutApiDocUis, nativeAddons(outdir)],
        metafile: true,
        logLevel: "silent",
      }),
    ),
  )
  const metafile: esbuild.Metafile = {
    inputs: Object.assign({}, ...results.map((r) => r.metafile.inputs)),
    outputs: Object.assign({}, ...results.map((r) => r.metafile.outputs)),
  }
  await writeFile(join(outdir, "meta.json"), JSON.stringify(metafile))
  const outputs = entries.map((entry) => {
    const file = Object.keys(metafile.outputs).find((f) => f.endsWith(`/${entry}.mjs`))!
    // What a start loads: the entry and the chunks it imports statically, transitively.
    const atStart = new Set<string>()
    const visit = (f: string) => {
      if (atStart.has(f) || !metafile.outputs[f]) return
      atStart.add(f)
      for (const i of metafile.outputs[f]!.imports) if (i.kind === "import-statement") visit(i.path)
    }
    visit(file)
    const all = Object.keys(metafile.outputs).filter(
      (f) => (f === file || f.includes(`/chunks/${entry}-`)) && f.endsWith(".mjs"),
    )
    const sizeOf = (files: Iterable<string>) => [...files].reduce((sum, f) => sum + metafile.outputs[f]!.bytes, 0)
    const merged = {
      ...metafile.outputs[file]!,
      inputs: Object.assign({}, ...[...atStart].map((f) => metafile.outputs[f]!.inputs)),
    }
    return {
      entry,
      file: join(root, file),
      bytes: sizeOf(atStart),
      lazyBytes: sizeOf(all) - sizeOf(atStart),
      packages: byPackage(merged),
    }
  })
  return { name, outdir, outputs, warnings: results.flatMap((r) => r.warnings) }
}

/** The container's health check script (exec form, absolute path: no shell in the image). */
export const HEALTHCHECK = "healthcheck.mjs"

/**
 * Lays out exactly what one entry of a built function needs at run time into `dest`, and nothing else: the entry, the
 * chunks it loads (statically or lazily), its native addons, and the package files its manifest declares (`assets`). The
 * container image (`main`, infra/Dockerfile) and the Lambda package (`lambda`) are made by this; tests run from it.
 */
export const assemble = async (
  report: BuildReport,
  entry: OutputReport["entry"],
  dest: string,
): Promise<Array<string>> => {
  const manifest = registry.find((m) => m.name === report.name)
  if (manifest === undefined) throw new Error(`${report.name} is not in functions/registry.ts`)
  await rm(dest, { recursive: true, force: true })
  await mkdir(join(dest, "chunks"), { recursive: true })
  const files = readdirSync(report.outdir, { withFileTypes: true })
  const copied: Array<string> = []
  const copy = async (from: string, to: string) => {
    await copyFile(from, join(dest, to))
    copied.push(to)
  }
  for (const f of files) {
    if (f.isFile() && (f.name === `${entry}.mjs` || f.name.endsWith(".node")))
      await copy(join(report.outdir, f.name), f.name)
  }
  for (const chunk of readdirSync(join(report.outdir, "chunks"))) {
    if (chunk.startsWith(`${entry}-`) && chunk.endsWith(".mjs"))
      await copy(join(report.outdir, "chunks", chunk), `chunks/${chunk}`)
  }
  if (entry === "main") {
    // The container's health check, with the manifest's port as default: no port is passed to the image by hand.
    const port = manifest.ports.http
    await writeFile(
      join(dest, HEALTHCHECK),
      `fetch(\`http://127.0.0.1:\${process.env.HTTP_PORT || ${port}}/healthz\`, { signal: AbortSignal.timeout(2500) })` +
        ".then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))\n",
    )
    copied.push(HEALTHCHECK)
  }
  // Package files the function serves (its manifest's `assets`), beside the entry: a bundle has no node_modules.
  for (const asset of manifest.assets ?? []) {
    await mkdir(join(dest, asset.dir), { recursive: true })
    if (isBrowserAssets(asset)) {
      // A browser application: bundled here (the image has no esbuild), the files the function serves as they are.
      for (const file of await bundleBrowser(asset.browser)) {
        await writeFile(join(dest, asset.dir, file.name), file.bytes)
        copied.push(`${asset.dir}/${file.name}`)
      }
      continue
    }
    const from = dirname(createRequire(import.meta.url).resolve(`${asset.from}/package.json`))
    for (const name of asset.files) await copy(join(from, name), `${asset.dir}/${name}`)
  }
  return copied.sort()
}

/** Bundles the named functions (default: all discovered) in parallel; rejects if any build fails. */
export const build = async (names: ReadonlyArray<string> = [], options: BuildOptions = {}) => {
  const known = discover()
  const unknown = names.filter((n) => !known.includes(n))
  if (unknown.length > 0) throw new Error(`unknown function(s): ${unknown.join(", ")} (known: ${known.join(", ")})`)
  const settled = await Promise.allSettled((names.length > 0 ? names : known).map((n) => buildOne(n, options)))
  const failures = settled.flatMap((s, i) =>
    s.status === "rejected" ? [{ name: names[i] ?? known[i], error: s.reason }] : [],
  )
  if (failures.length > 0) {
    throw new AggregateError(
      failures.map((f) => f.error),
      `build failed: ${failures.map((f) => f.name).join(", ")}`,
    )
  }
  return settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []))
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`

/** The table printed after a build: function, entry, bundle bytes, top 5 packages by bytes. */
export const formatReport = (reports: ReadonlyArray<BuildReport>, root = ROOT): string => {
  const rows = reports.flatMap((r) =>
    r.outputs.map((o) => [
      r.name,
      relative(root, o.file),
      `${o.bytes.toLocaleString("en-US")} B (${kb(o.bytes)})`,
      kb(o.lazyBytes),
      o.packages
        .filter((p) => p.name !== "(own)")
        .slice(0, 5)
        .map((p) => `${p.name} ${kb(p.bytes)}`)
        .join(", "),
      kb(o.packages.find((p) => p.name === "(own)")?.bytes ?? 0),
    ]),
  )
  const header = ["function", "bundle", "bytes at start", "lazy chunks", "top 5 packages at start", "own code"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n")
}

const formatMessages = async (messages: Array<esbuild.Message>, kind: "error" | "warning") =>
  (await esbuild.formatMessages(messages, { kind, color: process.stderr.isTTY })).join("")

if (import.meta.main) {
  const started = performance.now()
  try {
    // `--image <name> <dir>`: build one function and lay out its container image's files in <dir> (infra/Dockerfile).
    if (process.argv[2] === "--image") {
      const [name, dest] = process.argv.slice(3)
      if (!name || !dest)
        throw new Error(
          `usage: node scripts/build.ts --image <function> <dir> (function: one of ${discover().join(", ")})`,
        )
      const [report] = await build([name])
      const files = await assemble(report!, "main", dest)
      console.log(`image files of ${name} in ${dest}: ${files.join(", ")}`)
      process.exit(0)
    }
    const reports = await build(process.argv.slice(2))
    for (const r of reports) {
      if (r.warnings.length > 0) process.stderr.write(await formatMessages([...r.warnings], "warning"))
    }
    console.log(formatReport(reports))
    console.log(`\nbuilt ${reports.length} function(s) in ${Math.round(performance.now() - started)} ms`)
  } catch (error) {
    const errors = error instanceof AggregateError ? error.errors : [error]
    for (const e of errors) {
      if (e && typeof e === "object" && "errors" in e && Array.isArray(e.errors)) {
        process.stderr.write(await formatMessages(e.errors, "error"))
      } else process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`)
    }
    if (error instanceof AggregateError) process.stderr.write(`${error.message}\n`)
    process.exitCode = 1
  }
}
