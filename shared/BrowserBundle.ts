// A browser application a function serves (the gateway's web console), bundled by esbuild: scripts/build.ts writes it
// beside a function's bundle (its manifest's `assets`), and a function running from source bundles it in memory when
// it starts. One set of build options for both: what a test sees in the browser is what the image serves.
import { isAbsolute, join } from "node:path"

/** One file of a bundled browser application. */
export interface BrowserFile {
  /** Its name, content-hashed for the scripts and styles (`app-3FQ7X2KM.js`); `index.html` is not bundled here. */
  readonly name: string
  readonly contentType: string
  readonly bytes: Uint8Array
}

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
}

const ROOT = join(import.meta.dirname, "..")

/**
 * Bundles the browser application at `entry` (relative to the repository, or absolute): one minified ES module and
 * its stylesheet, names hashed by content (served with a long cache life), no source maps, no external requests.
 */
export const bundleBrowser = async (entry: string): Promise<ReadonlyArray<BrowserFile>> => {
  // Loaded on demand: esbuild is a build tool, absent from a function's image (which carries the files prebuilt).
  const esbuild = await import("esbuild")
  const result = await esbuild.build({
    entryPoints: { app: isAbsolute(entry) ? entry : join(ROOT, entry) },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox110", "safari16"],
    minify: true,
    write: false,
    outdir: "/",
    entryNames: "[name]-[hash]",
    // Screens may import() what only they need (uPlot): a chunk of its own, loaded when first used.
    splitting: true,
    chunkNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    jsx: "automatic",
    jsxImportSource: "preact",
    legalComments: "none",
    define: { "process.env.NODE_ENV": '"production"' },
    logLevel: "silent",
  })
  return result.outputFiles.map((file) => {
    const name = file.path.slice(file.path.lastIndexOf("/") + 1)
    const ext = name.slice(name.lastIndexOf("."))
    return { name, contentType: TYPES[ext] ?? "application/octet-stream", bytes: file.contents }
  })
}
