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

/** A PORT_OFFSET (scripts/start.ts) that moves every function's HTTP and gRPC ports onto free ones. */
export const freePortOffset = async (): Promise<number> => {
  const ports = manifests.flatMap((m) => [m.ports.http, ...(m.ports.grpc === undefined ? [] : [m.ports.grpc])])
  for (let attempt = 0; attempt < 50; attempt++) {
    const offset = 20_000 + Math.floor(Math.random() * 30_000)
    if (
      ports.every((p) => p + offset < 65_000) &&
      (await Promise.all(ports.map((p) => bindable(p + offset)))).every(Boolean)
    )
      return offset
  }
  throw new Error("no free range of ports for the platform")
}
