// npm start's platform process: every function's container (its App.ts `app`) in this one process, each on its own
// ports (PLATFORM_PORTS, from scripts/start.ts) and enforcing its own routes there. Modules load once and memory is
// shared, which is what makes a local start of every function fast and small; production runs one container per
// function (functions/<name>/main.ts), and `npm start -- --processes` does too.
import { manifests } from "../functions/registry.ts"
import type { FunctionApp } from "../shared/FunctionApp.ts"
import * as Main from "../shared/Main.ts"
import { startOrder } from "../shared/Module.ts"

const ports = JSON.parse(process.env.PLATFORM_PORTS ?? "{}") as Record<string, { http: number; grpc?: number }>

const apps = await Promise.all(
  startOrder(manifests).map(async (m) => {
    const { app } = (await import(`../functions/${m.name}/App.ts`)) as { app: FunctionApp }
    const port = ports[m.name] ?? m.ports
    return {
      app,
      env: { HTTP_PORT: String(port.http), ...(port.grpc === undefined ? {} : { GRPC_PORT: String(port.grpc) }) },
    }
  }),
)

Main.runTogether(apps)
