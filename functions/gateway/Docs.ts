import { existsSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, extname, join } from "node:path"
import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import * as Problem from "../../shared/Problem.ts"
import { manifest } from "./module.ts"

// The manifest's assets are Swagger UI's files: what scripts/build.ts copies beside a bundle is what is served here.
const [swagger] = manifest.assets

/** Where a bundle finds Swagger UI's files when there is no node_modules: `docs-assets/` beside it (the build puts them there). */
export const BUNDLED_ASSETS_DIR = swagger.dir

// swagger-ui-dist ships the built UI; it is served from this process (no CDN). A bundle without node_modules finds
// it under DOCS_ASSETS_DIR, else in `docs-assets/` next to the bundle (scripts/build.ts copies it there).
const assetsDir = (): string | undefined => {
  if (process.env.DOCS_ASSETS_DIR) return process.env.DOCS_ASSETS_DIR
  const bundled = join(import.meta.dirname, BUNDLED_ASSETS_DIR)
  if (existsSync(bundled)) return bundled
  try {
    return dirname(createRequire(import.meta.url).resolve(`${swagger.from}/package.json`))
  } catch {
    return undefined
  }
}

const TYPES: Record<string, string> = {
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".png": "image/png",
}

/** Swagger UI's files the docs page serves (the manifest's assets), with their content types. */
export const ASSETS: Record<string, string> = Object.fromEntries(
  swagger.files.map((file) => [file, TYPES[extname(file)] ?? "application/octet-stream"]),
)

/** The HTML page of the API reference: Swagger UI over `/openapi.json`, every asset from `/docs/`. */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Platform API</title>
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`

const init = `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: true })\n`

/** `GET /docs` (the rendered API reference) and its assets under `/docs/`, read once from swagger-ui-dist. */
export const routes = Layer.unwrap(
  Effect.sync(() => {
    const dir = assetsDir()
    const loaded = new Map<string, Uint8Array>()
    const asset = (name: string) => {
      const type = ASSETS[name]
      if (type === undefined || dir === undefined) return Problem.response(404, "no such asset")
      let body = loaded.get(name)
      if (body === undefined) {
        body = readFileSync(join(dir, name))
        loaded.set(name, body)
      }
      return HttpServerResponse.uint8Array(body, {
        contentType: type,
        headers: { "cache-control": "public, max-age=86400" },
      })
    }
    const csp = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'"
    return Layer.mergeAll(
      HttpRouter.add(
        "GET",
        "/docs",
        Effect.sync(() =>
          dir === undefined
            ? Problem.response(503, "the API reference assets (swagger-ui-dist) are not installed")
            : HttpServerResponse.html(page).pipe(HttpServerResponse.setHeader("content-security-policy", csp)),
        ),
      ),
      HttpRouter.add(
        "GET",
        "/docs/init.js",
        Effect.succeed(HttpServerResponse.text(init, { contentType: "text/javascript; charset=utf-8" })),
      ),
      HttpRouter.add(
        "GET",
        "/docs/:asset",
        Effect.flatMap(HttpRouter.params, (params) => Effect.sync(() => asset(params.asset ?? ""))),
      ),
    )
  }),
)
