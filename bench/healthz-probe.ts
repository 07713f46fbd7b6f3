// The /healthz prober of bench/login-flood.ts, in its own process so that the load generator's event loop does not
// delay the probes. It raises its own scheduling priority when allowed (a probe should measure the service, not wait
// for a core itself), probes each URL sequentially (one loop per URL, a fresh connection each, like a kubelet probe)
// every `intervalMs`, and on "stop" (stdin) or after `count` probes per URL prints {priority, samples: [[status, ms]...]
// per URL} as one JSON line.
//   node bench/healthz-probe.ts <intervalMs> <count|0> <url>...
import { get } from "node:http"
import { setPriority } from "node:os"
import { setTimeout as sleep } from "node:timers/promises"

const [interval = "20", count = "0", ...urls] = process.argv.slice(2)
const intervalMs = Number(interval)
const limit = Number(count)

let priority = "raised (nice -10)"
try {
  setPriority(-10)
} catch {
  priority = "default (could not raise)"
}

const probe = (url: string): Promise<[number, number]> =>
  new Promise((resolve) => {
    const started = performance.now()
    const request = get(url, { agent: false, timeout: 10_000 }, (response) => {
      response.resume()
      response.on("end", () => resolve([response.statusCode ?? 0, performance.now() - started]))
    })
    request.on("timeout", () => request.destroy())
    request.on("error", () => resolve([0, performance.now() - started]))
  })

let stopped = false
process.stdin.on("data", () => {
  stopped = true
})
process.stdin.on("end", () => {
  stopped = true
})

const samples = await Promise.all(
  urls.map(async (url) => {
    const out: Array<[number, number]> = []
    while (!stopped && (limit === 0 || out.length < limit)) {
      out.push(await probe(url))
      await sleep(intervalMs)
    }
    return out
  }),
)
process.stdout.write(`${JSON.stringify({ priority, samples })}\n`)
process.exit(0)
