import { existsSync, readdirSync, readFileSync } from "node:fs"
import { extname, join } from "node:path"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { type BrowserFile, bundleBrowser } from "../../../shared/BrowserBundle.ts"
import { type AssetSpec, isBrowserAssets } from "../../../shared/Module.ts"
import * as Problem from "../../../shared/Problem.ts"
import { manifest } from "../module.ts"

// The console is the manifest's browser application: scripts/build.ts bundles it beside the gateway's bundle (the
// image serves those files); running from source, the gateway bundles it in memory on the first request.
const app = (manifest.assets as ReadonlyArray<AssetSpec>).find(isBrowserAssets)!

/** Where the console is served: its page (the router answers `/console/` too) and its files under it. */
export const PATHS = { page: "/console", prefix: "/console/" } as const

/** The paths the gateway answers itself for the console (the proxy never forwards them). */
export const isConsolePath = (path: string) => path === PATHS.page || path.startsWith(PATHS.prefix)

export interface ConsoleOptions {
  /**
   * Origins the console may send requests to besides its own (`CONSOLE_CONNECT_ORIGINS`): the attachment store's
   * upload endpoint when uploads go straight to S3 (with the embedded store they go to the platform itself).
   */
  readonly connectOrigins: ReadonlyArray<string>
}

/**
 * Only this origin's script and style (no inline script or style, nothing from a CDN), requests to this origin and the
 * configured upload origins, no framing, no plugins, no base or form tricks. The page holds no secret (tokens live in
 * the script's memory) but is never stored, so a new build is picked up at once.
 */
export const pageHeaders = (options: ConsoleOptions) => ({
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    `connect-src ${["'self'", ...options.connectOrigins].join(" ")}`,
    "font-src 'self'",
    "manifest-src 'self'",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
})

// Names carry their content's hash: a file never changes under its name.
const assetHeaders = {
  "cache-control": "public, max-age=31536000, immutable",
  "x-content-type-options": "nosniff",
}

/** The console's one HTML page: its stylesheet and its module script, both files of the bundle. */
export const page = (files: ReadonlyArray<BrowserFile>) => {
  // The entry, not one of the chunks it imports on demand.
  const script = files.find((f) => f.name.startsWith("app-") && f.name.endsWith(".js"))
  const style = files.find((f) => f.name.endsWith(".css"))
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Platform console</title>
${style === undefined ? "" : `<link rel="stylesheet" href="${PATHS.prefix}${style.name}">\n`}<script type="module" src="${PATHS.prefix}${script?.name}"></script>
</head>
<body>
<div id="app"><p class="boot">Loading the console…</p></div>
<noscript>The console needs JavaScript.</noscript>
</body>
</html>
`
}

const TYPES: Record<string, string> = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" }

/** The console's files as a bundle carries them (`console-assets/` beside it), if it does. */
const prebuilt = (dir: string): ReadonlyArray<BrowserFile> | undefined =>
  existsSync(dir)
    ? readdirSync(dir).map((name) => ({
        name,
        contentType: TYPES[extname(name)] ?? "application/octet-stream",
        bytes: readFileSync(join(dir, name)),
      }))
    : undefined

/** Where a bundle carries the console's files (scripts/build.ts writes them there). */
export const BUNDLED_DIR = join(import.meta.dirname, app.dir)

/**
 * The console's files: prebuilt beside the bundle (`CONSOLE_ASSETS_DIR` overrides where), else bundled now from its
 * source (a gateway running from the repository: `npm start`, tests).
 */
export const loadFiles = async (): Promise<ReadonlyArray<BrowserFile>> =>
  prebuilt(process.env.CONSOLE_ASSETS_DIR ?? BUNDLED_DIR) ?? (await bundleBrowser(app.browser))

/** `GET /console` (and `/console/`, the router ignoring a trailing slash): the page; `GET /console/<file>`: the bundle's files. */
export const routes = (options: ConsoleOptions) =>
  Layer.unwrap(
    Effect.sync(() => {
      // Loaded once, on the first request: the gateway's start does not wait for a bundle it may never serve.
      let loading: Promise<ReadonlyArray<BrowserFile>> | undefined
      const files = Effect.tryPromise({
        try: () => {
          loading ??= loadFiles()
          return loading
        },
        catch: (error) => error,
      }).pipe(
        Effect.tapError(() =>
          Effect.sync(() => {
            loading = undefined
          }),
        ),
      )
      const unavailable = (error: unknown) =>
        Effect.as(
          Effect.logError("the console's files could not be loaded", error),
          Problem.response(503, "the console's files are not available (build the gateway, or install esbuild)"),
        )
      const html = files.pipe(
        Effect.map((all) =>
          HttpServerResponse.html(page(all)).pipe(HttpServerResponse.setHeaders(pageHeaders(options))),
        ),
        Effect.catch(unavailable),
      )
      const file = Effect.flatMap(HttpRouter.params, (params) =>
        files.pipe(
          Effect.map((all) => {
            const found = all.find((f) => f.name === params.file)
            return found === undefined
              ? Problem.response(404, `no console file named ${JSON.stringify(params.file ?? "")}`)
              : HttpServerResponse.uint8Array(found.bytes, { contentType: found.contentType, headers: assetHeaders })
          }),
          Effect.catch(unavailable),
        ),
      )
      return Layer.mergeAll(
        HttpRouter.add("GET", PATHS.page, html),
        HttpRouter.add("GET", `${PATHS.prefix}:file`, file),
      )
    }),
  )
