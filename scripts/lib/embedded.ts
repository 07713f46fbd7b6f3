// How tests and benches run `npm start` on its embedded defaults beside the real test servers: an environment with no
// real server's address, and a PORT_OFFSET under which every function's ports are free.

import { manifests } from "../../functions/registry.ts"
import { bindable } from "../../shared/testing/ports.ts"

// What would point npm start at a real server (the addresses .env.test holds) or change how Node runs it.
const EXTERNAL = /^(DATABASE_URL|REDIS_URL|KAFKA_BROKERS|S3_.*|AWS_.*|SMTP_URL|DB_SCHEMA|NODE_OPTIONS)$/

/** This process's environment without a real server's address, with `extra` over it (undefined removes a key). */
export const embeddedEnv = (
  extra: Readonly<Record<string, string | undefined>> = {},
): Record<string, string | undefined> => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !EXTERNAL.test(key))),
  ...extra,
})

// Every moved port stays below Linux's ephemeral range (32768–60999), as freePort's do: an outgoing connection (the
// platform's own, to its database or a peer, while it starts) cannot take one between the probe and its listener.
// With offsets up to 30,000 it happened (EADDRINUSE on analytics' port: npm start restarted and never came up).
const LOW = 20_000
const HIGH = 32_767

/** A PORT_OFFSET (scripts/start.ts) that moves every function's HTTP and gRPC ports onto free ones. */
export const freePortOffset = async (): Promise<number> => {
  const ports = manifests.flatMap((m) => [m.ports.http, ...(m.ports.grpc === undefined ? [] : [m.ports.grpc])])
  const least = LOW - Math.min(...ports)
  const most = HIGH - Math.max(...ports)
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = least + Math.floor(Math.random() * (most - least + 1))
    if ((await Promise.all(ports.map((p) => bindable(p + offset)))).every(Boolean)) return offset
  }
  throw new Error(`no free range of ports for the platform in ${LOW}-${HIGH}`)
}
