import { createServer } from "node:net"

// Below Linux's ephemeral range (32768–60999 by default), so no outgoing connection — a Kafka or Postgres client
// in a test running beside this one — can take the port between this probe and the process that will listen on it.
// A port the kernel picks (listen on 0) is an ephemeral one: CI once lost that race (a child's EADDRINUSE).
const LOW = 20_000
const HIGH = 32_767

/** Whether `port` can be listened on right now, on every address (the probe is closed before it answers). */
export const bindable = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = createServer()
    server.unref()
    server.once("error", () => resolve(false))
    // No host: the dual-stack wildcard, as the functions listen, so a port held on any address is refused here.
    server.listen(port, () => server.close(() => resolve(true)))
  })

/** A TCP port free on every address right now, outside the ephemeral range (the probe is closed before it returns). */
export const freePort = async (): Promise<number> => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1))
    if (await bindable(port)) return port
  }
  throw new Error(`no free port in ${LOW}-${HIGH} after 200 tries`)
}
