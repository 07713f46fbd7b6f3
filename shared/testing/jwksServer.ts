import { createServer } from "node:http"
import type { AddressInfo } from "node:net"

/** A JWKS served over node:http on a free port, as auth serves it; `fetches` counts the requests it answered. */
export interface JwksServer {
  readonly url: URL
  fetches(): number
  close(): Promise<void>
}

/** Serves whatever `jwks` returns at `/.well-known/jwks.json` (any other path is 404). */
export const serveJwks = async (jwks: () => Promise<unknown>, listenPort = 0): Promise<JwksServer> => {
  let fetches = 0
  const server = createServer((request, response) => {
    if (request.url !== "/.well-known/jwks.json") {
      response.writeHead(404).end()
      return
    }
    fetches++
    jwks().then(
      (body) => response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body)),
      () => response.writeHead(500).end(),
    )
  })
  await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: new URL(`http://127.0.0.1:${port}/.well-known/jwks.json`),
    fetches: () => fetches,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
