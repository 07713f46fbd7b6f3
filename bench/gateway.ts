// Gateway tax: the same authenticated GET (JWT verified, permission checked, rate limited) straight to the service
// and through the gateway, in one run. Prints the max-rate ratio and the latency the gateway adds at half of the
// direct path's max rate (open loop, fixed rate). Targets (reported, never enforced): ratio ≥ 0.5, added p99 ≤ 1 ms.
//   node bench/gateway.ts [--seconds 10] [--concurrency 16] [--rounds 3] [--warmup 5]
import { randomUUID } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { parseArgs, parseEnv } from "node:util"
import { Agent, request } from "undici"
import { startPlatform } from "../e2e/testing/platform.ts"

const ROOT = join(import.meta.dirname, "..")
const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    concurrency: { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
    warmup: { type: "string", default: "5" },
  },
})
const seconds = Number(values.seconds)
const concurrency = Number(values.concurrency)
const rounds = Number(values.rounds)
const warmup = Number(values.warmup)

// The real servers of `npm run infra:up` (.env.test), unless the environment names them.
if (!process.env.DATABASE_URL && existsSync(join(ROOT, ".env.test"))) {
  Object.assign(process.env, parseEnv(readFileSync(join(ROOT, ".env.test"), "utf8")))
}

const adminEmail = `bench-admin-${randomUUID().slice(0, 8)}@example.com`
const platform = await startPlatform({
  env: {
    BOOTSTRAP_ADMIN_EMAIL: adminEmail,
    // The bench is one client hammering one route: limits too high to reach, so every request is still counted in
    // Redis (per address and per user) without being refused.
    RATE_LIMIT_IP_PER_MINUTE: process.env.BENCH_IP_LIMIT ?? "100000000",
    RATE_LIMIT_USER_PER_MINUTE: process.env.BENCH_USER_LIMIT ?? "100000000",
    LOGIN_IP_LIMIT_PER_MINUTE: "100000000",
  },
})
const stop = async () => {
  await platform.stop()
}
process.on("SIGINT", () => void stop().then(() => process.exit(130)))

const agent = new Agent({ connections: concurrency * 2, pipelining: 1, keepAliveTimeout: 30_000 })
const call = async (url: string, token?: string, body?: unknown) => {
  const res = await request(url, {
    dispatcher: agent,
    method: body === undefined ? "GET" : "POST",
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const quantile = (sorted: ReadonlyArray<number>, q: number) =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!

try {
  // An administrator (the bootstrap account) with a token: the request carries a real JWT and needs a permission.
  const password = "correct horse battery"
  const registered = await call(`${platform.url}/api/v1/auth/register`, undefined, {
    email: adminEmail,
    password,
    name: "Bench",
  })
  if (registered.status !== 201) throw new Error(`register: ${registered.status} ${JSON.stringify(registered.body)}`)
  const userId = registered.body.id as string
  while (!platform.smtp.mails.some((m) => m.to.includes(adminEmail))) await sleep(50)
  const mail = platform.smtp.mails.find((m) => m.to.includes(adminEmail))!
  const verifyToken = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(mail.text)?.[1]
  await call(`${platform.url}/api/v1/auth/verify-email`, undefined, { token: verifyToken })
  const login = await call(`${platform.url}/api/v1/auth/login`, undefined, { email: adminEmail, password })
  const token = login.body.access_token as string
  const path = `/api/v1/users/${userId}`
  const direct = `${platform.functions.get("identity")!.url}${path}`
  const through = `${platform.url}${path}`
  while ((await call(through, token)).status !== 200) await sleep(100)

  // Closed loop: as fast as `concurrency` clients go.
  const maxRate = async (url: string, forSeconds = seconds) => {
    let done = 0
    let failed = 0
    const end = performance.now() + forSeconds * 1000
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const res = await call(url, token)
          if (res.status === 200) done++
          else failed++
        }
      }),
    )
    return { rps: done / forSeconds, failed }
  }

  // Open loop: requests started on a fixed schedule, whatever the answers' pace; latency per request.
  const atRate = async (url: string, rps: number) => {
    const latencies: Array<number> = []
    let failed = 0
    const interval = 1000 / rps
    const started = performance.now()
    const total = Math.floor(rps * seconds)
    const inflight: Array<Promise<void>> = []
    for (let i = 0; i < total; i++) {
      const due = started + i * interval
      const wait = due - performance.now()
      if (wait > 1) await sleep(wait)
      inflight.push(
        (async () => {
          const t = performance.now()
          const res = await call(url, token)
          if (res.status === 200) latencies.push(performance.now() - t)
          else failed++
        })(),
      )
    }
    await Promise.all(inflight)
    latencies.sort((a, b) => a - b)
    return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), failed }
  }

  // Both paths under load first, so that the rounds measure code the JIT has compiled (identity's first round ran
  // 30-40 % slower than the next ones without this).
  await maxRate(direct, warmup)
  await maxRate(through, warmup)
  // Alternating rounds, medians: the machine's drift (other work, JIT, GC) lands on both paths alike.
  const directRounds: Array<{ rps: number; failed: number }> = []
  const gatewayRounds: Array<{ rps: number; failed: number }> = []
  for (let round = 0; round < rounds; round++) {
    directRounds.push(await maxRate(direct))
    gatewayRounds.push(await maxRate(through))
  }
  const median = (runs: ReadonlyArray<{ rps: number; failed: number }>) => ({
    rps: quantile(
      runs.map((r) => r.rps).sort((a, b) => a - b),
      0.5,
    ),
    failed: runs.reduce((sum, r) => sum + r.failed, 0),
  })
  const directMax = median(directRounds)
  const gatewayMax = median(gatewayRounds)
  // One client, one request at a time: the latency the gateway adds when nothing queues (its own cost per request;
  // on two shared cores the loaded figures below are mostly queueing behind the other processes).
  const serial = async (url: string) => {
    const latencies: Array<number> = []
    const end = performance.now() + Math.min(seconds, 5) * 1000
    while (performance.now() < end) {
      const t = performance.now()
      await call(url, token)
      latencies.push(performance.now() - t)
    }
    latencies.sort((a, b) => a - b)
    return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) }
  }
  const directSerial = await serial(direct)
  const gatewaySerial = await serial(through)

  const half = Math.max(1, Math.floor(directMax.rps / 2))
  const directAt = await atRate(direct, half)
  const gatewayAt = await atRate(through, half)
  const ratio = gatewayMax.rps / directMax.rps
  const added = { p50: gatewayAt.p50 - directAt.p50, p99: gatewayAt.p99 - directAt.p99 }
  const ms = (n: number) => `${n.toFixed(2)} ms`
  console.log(`\ngateway tax: GET ${path.replace(userId, "{id}")} (JWT + permission + rate limit), ${seconds} s each`)
  console.log(
    `max rate, ${concurrency} clients, median of ${rounds} alternating rounds: direct ${directMax.rps.toFixed(0)} rps ` +
      `(${directRounds.map((r) => r.rps.toFixed(0)).join(", ")}), gateway ${gatewayMax.rps.toFixed(0)} rps ` +
      `(${gatewayRounds.map((r) => r.rps.toFixed(0)).join(", ")})`,
  )
  console.log(`  ratio ${ratio.toFixed(2)} (target ≥ 0.5: ${ratio >= 0.5 ? "ok" : "MISSED"})`)
  console.log(
    `1 client: direct p50 ${ms(directSerial.p50)} p99 ${ms(directSerial.p99)}, gateway p50 ${ms(gatewaySerial.p50)} ` +
      `p99 ${ms(gatewaySerial.p99)}; added p50 ${ms(gatewaySerial.p50 - directSerial.p50)} ` +
      `p99 ${ms(gatewaySerial.p99 - directSerial.p99)}`,
  )
  console.log(`at ${half} rps (half the direct max), open loop:`)
  console.log(`  direct  p50 ${ms(directAt.p50)} p99 ${ms(directAt.p99)}`)
  console.log(`  gateway p50 ${ms(gatewayAt.p50)} p99 ${ms(gatewayAt.p99)}`)
  console.log(
    `  added   p50 ${ms(added.p50)} p99 ${ms(added.p99)} (target p99 ≤ 1 ms: ${added.p99 <= 1 ? "ok" : "MISSED"})`,
  )
  const failures = directMax.failed + gatewayMax.failed + directAt.failed + gatewayAt.failed
  if (failures > 0) console.log(`non-200 answers: ${failures}`)
  console.log(
    JSON.stringify({
      bench: "gateway",
      seconds,
      concurrency,
      directRps: directMax.rps,
      gatewayRps: gatewayMax.rps,
      ratio,
      serial: { direct: directSerial, gateway: gatewaySerial },
      rate: half,
      direct: directAt,
      gateway: gatewayAt,
      added,
      failures,
    }),
  )
} finally {
  await agent.close()
  await stop()
}
