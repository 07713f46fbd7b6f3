// Readiness probe used by infra/up.sh: succeeds once the broker answers metadata requests.
// Usage: node infra/kafka/ready.cjs HOST:PORT TIMEOUT_MS
// Exit codes: 0 ready, 1 not ready before the timeout, 3 kafkajs is not installed.
"use strict"

let kafkajs
try {
  kafkajs = require("kafkajs")
} catch {
  process.exit(3)
}
const { Kafka, logLevel } = kafkajs
const [broker = "127.0.0.1:59092", timeoutMs = "30000"] = process.argv.slice(2)
const deadline = Date.now() + Number(timeoutMs)

async function probe() {
  const admin = new Kafka({
    clientId: "infra-ready",
    brokers: [broker],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  }).admin()
  try {
    await admin.connect()
    await admin.listTopics()
    return await admin.describeCluster()
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

;(async () => {
  let lastError
  while (Date.now() < deadline) {
    try {
      const cluster = await probe()
      console.log(`metadata ok: ${cluster.brokers.length} broker(s), controller ${cluster.controller}`)
      process.exit(0)
    } catch (error) {
      lastError = error
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
  }
  console.error(`kafka metadata request failed: ${lastError ? lastError.message : "timeout"}`)
  process.exit(1)
})()
