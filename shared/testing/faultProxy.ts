import { connect, createServer, type Server, type Socket } from "node:net"

/**
 * What the proxy does to traffic:
 * - `pass`: forwards both ways, like a cable;
 * - `hang`: a server that stopped answering (SIGSTOP, a full disk, a network partition): connections stay open and
 *   new ones are accepted, but no byte reaches either side;
 * - `down`: a stopped server: open connections are reset and new ones refused.
 */
export type FaultMode = "pass" | "hang" | "down"

export interface FaultProxy {
  /** The port clients connect to instead of the target's. */
  readonly port: number
  /** Rewrites `url`'s host:port (the target's) to the proxy's. */
  readonly via: (url: string) => string
  readonly mode: () => FaultMode
  /** Switches the mode; resolves once the proxy listens again (after `down`) or has stopped forwarding. */
  readonly set: (mode: FaultMode) => Promise<void>
  readonly close: () => Promise<void>
}

/**
 * A TCP proxy in front of a real server that can make it hang or go down and come back, for outage tests: the
 * shared test servers keep running for every other test while the clients behind this proxy see the fault.
 */
export const faultProxy = async (target: { readonly host: string; readonly port: number }): Promise<FaultProxy> => {
  let mode: FaultMode = "pass"
  const pairs = new Set<{ client: Socket; upstream: Socket }>()

  const accept = (client: Socket) => {
    client.on("error", () => {})
    if (mode === "hang") {
      // Accepted and never answered: the bytes the client sends are read and dropped.
      client.on("data", () => {})
      const pair = { client, upstream: client }
      pairs.add(pair)
      client.on("close", () => pairs.delete(pair))
      return
    }
    const upstream = connect(target.port, target.host)
    const pair = { client, upstream }
    pairs.add(pair)
    upstream.on("error", () => client.destroy())
    client.on("close", () => {
      upstream.destroy()
      pairs.delete(pair)
    })
    upstream.on("close", () => client.destroy())
    client.on("data", (chunk) => mode === "pass" && upstream.write(chunk))
    upstream.on("data", (chunk) => mode === "pass" && client.write(chunk))
  }

  let server: Server = createServer(accept)
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, "127.0.0.1", () => {
        const address = server.address()
        resolve(typeof address === "object" && address ? address.port : port)
      })
    })
  const port = await listen(0)

  const set = async (next: FaultMode) => {
    const previous = mode
    mode = next
    if (next === "down" && previous !== "down") {
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy()
        upstream.destroy()
      }
      pairs.clear()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
    if (next !== "down" && previous === "down") {
      server = createServer(accept)
      await listen(port)
    }
    if (next === "pass" && previous === "hang") {
      // A hung server's connections never recover: their requests were lost mid-protocol. Reset them, as a
      // server resumed after a long stop would after the clients' keepalives gave up.
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy()
        upstream.destroy()
      }
      pairs.clear()
    }
  }

  return {
    port,
    via: (url) => url.replace(`:${target.port}`, `:${port}`),
    mode: () => mode,
    set,
    close: async () => {
      await set("down")
    },
  }
}
