import { afterEach, describe, expect, it, vi } from "vitest"
import { type Child, NotReady, spawnChild, stopAll, waitForHttp } from "../scripts/lib/processes.ts"
import { freePort } from "../shared/testing/ports.ts"

// The child-process plumbing of npm start, the system tests and the benches (scripts/lib/processes.ts), on small
// Node programs.
const node = (name: string, source: string, env: Record<string, string | undefined> = process.env) =>
  spawnChild({ name, args: ["-e", source], env })

const started: Array<Child> = []
const track = (child: Child) => {
  started.push(child)
  return child
}
afterEach(async () => {
  vi.restoreAllMocks()
  await stopAll(started.splice(0), 1_000)
})

// A server on `port` that answers 503 at first and 200 after `readyAfterMs`.
const server = (port: number, readyAfterMs: number) => `
  const started = Date.now()
  require("node:http").createServer((req, res) => {
    res.statusCode = Date.now() - started > ${readyAfterMs} ? 200 : 503
    res.end(res.statusCode === 200 ? "ok" : "starting")
  }).listen(${port}, "127.0.0.1")
  process.on("SIGTERM", () => process.exit(0))
`

describe("spawnChild", () => {
  it("gives the environment without its undefined entries, and hands over every line with its stream", async () => {
    const lines: Array<string> = []
    const child = spawnChild({
      name: "env",
      args: ["-e", 'console.log(process.env.KEPT, "HOME" in process.env); console.error("to stderr")'],
      env: { PATH: process.env.PATH, KEPT: "yes", HOME: undefined },
      onLine: (line, stream) => lines.push(`${stream}: ${line}`),
    })
    expect(await child.exited).toEqual({ code: 0, signal: null })
    expect(lines.sort()).toEqual(["stderr: to stderr", "stdout: yes false"])
    expect(child.output()).toContain("yes false\n")
    expect(child.exit).toEqual({ code: 0, signal: null })
  })

  it("prints each line after its label", async () => {
    const printed: Array<string> = []
    const write = process.stdout.write.bind(process.stdout)
    vi.spyOn(process.stdout, "write").mockImplementation((chunk, ...rest) => {
      if (String(chunk).startsWith("[tag] ")) printed.push(String(chunk))
      else write(chunk as string, ...(rest as []))
      return true
    })
    await spawnChild({
      name: "tag",
      args: ["-e", 'console.log("one\\ntwo"); process.stdout.write("three")'],
      label: "[tag] ",
    }).exited
    expect(printed).toEqual(["[tag] one\n", "[tag] two\n", "[tag] three\n"])
  })

  it("keeps only the latest output", async () => {
    const child = spawnChild({
      name: "chatty",
      args: ["-e", "for (let i = 0; i < 1000; i++) console.log(i)"],
      tailChars: 8,
    })
    await child.exited
    expect(child.output()).toBe("998\n999\n")
  })

  it("reports a program that cannot be started as an exit, with why in its output", async () => {
    const child = spawnChild({ name: "missing", command: "/nonexistent/program", args: [] })
    expect(await child.exited).toEqual({ code: null, signal: null })
    expect(child.output()).toMatch(/could not start missing: .*ENOENT/)
  })
})

describe("waitForHttp", () => {
  it("waits until the URL answers 2xx", async () => {
    const port = await freePort()
    const child = track(node("server", server(port, 300)))
    await waitForHttp(`http://127.0.0.1:${port}/readyz`, { child, intervalMs: 20 })
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(200)
  })

  it("fails as soon as the child exits, with its exit and its last output", async () => {
    const port = await freePort()
    const child = track(node("crasher", 'console.error("cannot start: no database"); process.exit(3)'))
    const started = Date.now()
    const error = await waitForHttp(`http://127.0.0.1:${port}/readyz`, { child }).catch((e: unknown) => e)
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(error).toBeInstanceOf(NotReady)
    expect((error as NotReady).message).toBe("crasher exited (3) before ready:\ncannot start: no database\n")
  })

  it("fails after the timeout with the last answer and the child's output", async () => {
    const port = await freePort()
    const child = track(node("slow", `console.log("warming up"); ${server(port, 60_000)}`))
    const error = await waitForHttp(`http://127.0.0.1:${port}/readyz`, { child, timeoutMs: 300, intervalMs: 20 }).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(NotReady)
    expect((error as NotReady).reason).toMatch(
      /^not ready after 300 ms \(last answer: (503 starting|.*ECONNREFUSED.*)\)$/,
    )
    expect((error as NotReady).output).toBe("warming up\n")
  })

  it("without a child, keeps waiting through connection refusals (a supervisor may restart it)", async () => {
    const port = await freePort()
    const waiting = waitForHttp(`http://127.0.0.1:${port}/readyz`, { timeoutMs: 10_000, intervalMs: 20 })
    await new Promise((r) => setTimeout(r, 300))
    track(node("late", server(port, 0)))
    await waiting
  })
})

describe("stopping", () => {
  it("SIGTERM lets a child drain and exit on its own", async () => {
    const child = track(
      node(
        "drains",
        'process.on("SIGTERM", () => { console.log("draining"); process.exit(0) }); setInterval(() => {}, 1000); console.log("up")',
      ),
    )
    await waitForLine(child, "up")
    expect(await child.stop(5_000)).toEqual({ code: 0, signal: null })
    expect(child.output()).toContain("draining")
  })

  it("SIGKILL ends a child that ignores SIGTERM after the grace period", async () => {
    const child = track(
      node("stubborn", 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000); console.log("up")'),
    )
    await waitForLine(child, "up")
    const started = Date.now()
    expect(await child.stop(300)).toEqual({ code: null, signal: "SIGKILL" })
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
  })

  it("stopAll signals the last started first and waits for all; a child already gone is skipped", async () => {
    const children = ["first", "second", "third"].map((name) =>
      track(node(name, 'setInterval(() => {}, 1000); console.log("up")')),
    )
    const gone = track(node("gone", "process.exit(0)"))
    await gone.exited
    await Promise.all(children.map((c) => waitForLine(c, "up")))
    const order: Array<string> = []
    for (const child of [...children, gone]) {
      const kill = child.process.kill.bind(child.process)
      vi.spyOn(child.process, "kill").mockImplementation((signal) => {
        order.push(`${child.name} ${String(signal)}`)
        return kill(signal)
      })
    }
    await stopAll([children[0]!, gone, children[1]!, children[2]!], 5_000)
    expect(order).toEqual(["third SIGTERM", "second SIGTERM", "first SIGTERM"])
    for (const child of children) expect(child.exit).toEqual({ code: null, signal: "SIGTERM" })
  })
})

const waitForLine = async (child: Child, line: string) => {
  const deadline = Date.now() + 10_000
  while (!child.output().split("\n").includes(line)) {
    if (Date.now() > deadline || child.exit !== undefined) throw new Error(`no "${line}" from ${child.name}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
