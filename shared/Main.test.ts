import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { fileURLToPath } from "node:url"
import { afterEach, describe, expect, it } from "vitest"
import { freePort } from "./testing/ports.ts"

// Reports every module resolved from @grpc/* (static or dynamic import, or require) on stderr.
const RECORD_GRPC = `data:text/javascript,${encodeURIComponent(
  'import { registerHooks } from "node:module";' +
    "registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context);" +
    ' if (r.url.includes("/@grpc/")) process.stderr.write("loaded " + r.url + "\\n"); return r } });',
)}`

const running: Array<ChildProcess> = []
afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null) child.kill("SIGKILL")
})

const waitFor = async (url: string, child: ChildProcess, output: () => string) => {
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}:\n${output()}`)
    try {
      if ((await fetch(url)).ok) return
    } catch {}
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`not ready:\n${output()}`)
}

describe("Main", () => {
  // A function without a Grpc.ts module compiles (tsc checks shared/testing/httpOnlyMain.ts) and runs: FunctionApp.define
  // takes no gRPC loader, loads nothing of grpc-js and opens no gRPC port.
  it("runs a function without gRPC: serves HTTP, loads no grpc-js, stops cleanly on SIGTERM", async () => {
    const port = await freePort()
    const fixture = fileURLToPath(new URL("testing/httpOnlyMain.ts", import.meta.url))
    const child = spawn(process.execPath, ["--import", RECORD_GRPC, fixture], {
      env: { ...process.env, HTTP_PORT: String(port), NODE_ENV: "test", LOG_LEVEL: "error" },
      stdio: ["ignore", "pipe", "pipe"],
    })
    running.push(child)
    let output = ""
    for (const stream of [child.stdout, child.stderr]) stream.on("data", (chunk) => (output += chunk))
    const base = `http://127.0.0.1:${port}`
    await waitFor(`${base}/healthz`, child, () => output)
    expect(await (await fetch(`${base}/api/v1/hello`)).json()).toEqual({ hello: "world" })
    const ready = await fetch(`${base}/readyz`)
    const body = await ready.text()
    expect(ready.status, body).toBe(200)
    expect(body).not.toContain("grpc")
    child.kill("SIGTERM")
    const [code] = await once(child, "exit")
    expect(code, output).toBe(0)
    expect(output).not.toContain("loaded ")
  })

  it("cuts a shutdown that outlives twice its timeout: logged, exit 1", async () => {
    const port = await freePort()
    const fixture = fileURLToPath(new URL("testing/httpOnlyMain.ts", import.meta.url))
    const child = spawn(process.execPath, [fixture], {
      env: {
        ...process.env,
        HTTP_PORT: String(port),
        NODE_ENV: "test",
        LOG_LEVEL: "error",
        SHUTDOWN_TIMEOUT_MS: "300",
        HELLO_HANG_ON_CLOSE: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
    })
    running.push(child)
    let output = ""
    for (const stream of [child.stdout, child.stderr]) stream.on("data", (chunk) => (output += chunk))
    await waitFor(`http://127.0.0.1:${port}/healthz`, child, () => output)
    const stopping = Date.now()
    child.kill("SIGTERM")
    const [code] = await once(child, "exit")
    expect(code, output).toBe(1)
    expect(Date.now() - stopping).toBeGreaterThanOrEqual(1_600)
    expect(output).toContain("the shutdown did not finish within 1600 ms")
  })
})
