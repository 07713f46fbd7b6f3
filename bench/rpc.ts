// Internal RPC cost: grpc-js unary vs HTTP/JSON (undici keep-alive pool), the same payload (identity's GetUser
// answer), the same fixed concurrency, one process each side. Prints rps and latency; never asserts.
//   node bench/rpc.ts [--seconds 8] [--concurrency 16]
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { parseArgs } from "node:util"
import * as grpc from "@grpc/grpc-js"
import { Agent, request } from "undici"
import {
  type GetUserResponse,
  IdentityServiceClient,
  IdentityServiceService,
} from "../proto/gen/identity/v1/identity.ts"

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "8" }, concurrency: { type: "string", default: "16" } },
})
const seconds = Number(values.seconds)
const concurrency = Number(values.concurrency)

const answer: GetUserResponse = {
  user: {
    id: "0195a0a0-0000-7000-8000-000000000000",
    email: "ada.lovelace@example.com",
    name: "Ada Lovelace",
    emailVerified: true,
    status: "active",
    createdAt: "2026-11-25T20:00:00.000Z",
    updatedAt: "2026-11-25T21:00:00.000Z",
  },
}

// gRPC: the generated service definition, a unary handler answering at once.
const grpcServer = new grpc.Server()
grpcServer.addService(IdentityServiceService, {
  getUser: (_call: unknown, callback: grpc.sendUnaryData<GetUserResponse>) => callback(null, answer),
} as never)
const grpcPort = await new Promise<number>((resolve, reject) =>
  grpcServer.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) =>
    error ? reject(error) : resolve(port),
  ),
)
const client = new IdentityServiceClient(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure())

// HTTP/JSON: node:http answering the same object as JSON.
const body = JSON.stringify(answer)
const httpServer = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
  res.end(body)
})
await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve))
const httpUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}/api/v1/users/${answer.user!.id}`
const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 })

const grpcCall = () =>
  new Promise<void>((resolve, reject) =>
    client.getUser({ id: answer.user!.id }, (error) => (error ? reject(error) : resolve())),
  )
const httpCall = async () => {
  const res = await request(httpUrl, { dispatcher: agent })
  JSON.parse(await res.body.text())
}

const measure = async (call: () => Promise<void>) => {
  for (let i = 0; i < 500; i++) await call()
  const latencies: Array<number> = []
  const end = performance.now() + seconds * 1000
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now()
        await call()
        latencies.push(performance.now() - t)
      }
    }),
  )
  latencies.sort((a, b) => a - b)
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!
  return { rps: latencies.length / seconds, p50: q(0.5), p99: q(0.99) }
}

const http = await measure(httpCall)
const rpc = await measure(grpcCall)
const row = (name: string, r: { rps: number; p50: number; p99: number }) =>
  `${name.padEnd(10)} ${r.rps.toFixed(0).padStart(7)} rps   p50 ${r.p50.toFixed(2)} ms   p99 ${r.p99.toFixed(2)} ms`
console.log(`internal RPC, ${concurrency} in flight, ${seconds} s, payload ${Buffer.byteLength(body)} B as JSON:`)
console.log(row("HTTP/JSON", http))
console.log(row("grpc-js", rpc))
console.log(`grpc-js / HTTP rps ratio ${(rpc.rps / http.rps).toFixed(2)}`)
console.log(JSON.stringify({ bench: "rpc", seconds, concurrency, http, grpc: rpc }))
client.close()
grpcServer.forceShutdown()
httpServer.close()
await agent.close()
