// Smoke test of the servers started by infra/up.sh, using the settings in .env.test:
// PostgreSQL query, Redis round trip, Kafka topic create + produce + consume, S3 put + get, a stripe-mock PaymentIntent.
//   node infra/smoke.mjs
import { randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"

const envFile = process.env.ENV_FILE ?? fileURLToPath(new URL("../.env.test", import.meta.url))
const env = Object.fromEntries(
  readFileSync(envFile, "utf8")
    .split("\n")
    .filter((line) => /^[A-Z0-9_]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
)
const id = randomUUID().slice(0, 8)

async function check(name, fn) {
  const start = performance.now()
  try {
    const detail = await fn()
    console.log(`${name.padEnd(9)} ok   ${detail} (${Math.round(performance.now() - start)} ms)`)
    return true
  } catch (error) {
    console.error(`${name.padEnd(9)} FAIL ${error?.stack ?? error}`)
    return false
  }
}

const results = []

results.push(
  await check("postgres", async () => {
    const { default: pg } = await import("pg")
    const client = new pg.Client({ connectionString: env.DATABASE_URL })
    await client.connect()
    try {
      const { rows } = await client.query("SELECT 1 AS one, current_database() AS db, version() AS v")
      if (rows[0].one !== 1) throw new Error(`SELECT 1 returned ${rows[0].one}`)
      return `select 1 on ${rows[0].db} (${rows[0].v.split(" ").slice(0, 2).join(" ")})`
    } finally {
      await client.end()
    }
  }),
)

results.push(
  await check("redis", async () => {
    const mod = await import("ioredis")
    const Redis = mod.Redis ?? mod.default
    const redis = new Redis(env.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
    try {
      const pong = await redis.ping()
      await redis.set(`smoke:${id}`, "v", "EX", 10)
      const value = await redis.get(`smoke:${id}`)
      if (pong !== "PONG" || value !== "v") throw new Error(`ping=${pong} get=${value}`)
      return "ping + set/get"
    } finally {
      redis.disconnect()
    }
  }),
)

results.push(
  await check("kafka", async () => {
    const { Kafka, logLevel } = await import("kafkajs")
    const kafka = new Kafka({
      clientId: "infra-smoke",
      brokers: env.KAFKA_BROKERS.split(","),
      logLevel: logLevel.NOTHING,
    })
    const topic = `infra-smoke-${id}`
    const admin = kafka.admin()
    await admin.connect()
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
    await admin.disconnect()

    const producer = kafka.producer()
    await producer.connect()
    await producer.send({ topic, messages: [{ key: "k", value: `hello ${id}` }] })
    await producer.disconnect()

    const consumer = kafka.consumer({ groupId: `infra-smoke-${id}` })
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    const received = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no message within 30 s")), 30_000)
      consumer.run({
        eachMessage: async ({ message }) => {
          clearTimeout(timer)
          resolve(message.value.toString())
        },
      })
    })
    await consumer.disconnect()
    const cleanup = kafka.admin()
    await cleanup.connect()
    await cleanup.deleteTopics({ topics: [topic] }).catch(() => {})
    await cleanup.disconnect()
    if (received !== `hello ${id}`) throw new Error(`received ${received}`)
    return `topic created, message produced and consumed`
  }),
)

results.push(
  await check("s3", async () => {
    const { S3Client, PutObjectCommand, GetObjectCommand, DeleteObjectCommand } = await import("@aws-sdk/client-s3")
    const s3 = new S3Client({
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    })
    const Key = `smoke/${id}.txt`
    await s3.send(new PutObjectCommand({ Bucket: env.S3_BUCKET, Key, Body: `hello ${id}` }))
    const got = await s3.send(new GetObjectCommand({ Bucket: env.S3_BUCKET, Key }))
    const body = await got.Body.transformToString()
    await s3.send(new DeleteObjectCommand({ Bucket: env.S3_BUCKET, Key }))
    if (body !== `hello ${id}`) throw new Error(`got ${body}`)
    return `put + get in bucket ${env.S3_BUCKET}`
  }),
)

results.push(
  await check("stripe", async () => {
    const { default: Stripe } = await import("stripe")
    const base = new URL(env.STRIPE_API_BASE)
    const stripe = new Stripe("sk_test_smoke", {
      host: base.hostname,
      port: base.port,
      protocol: "http",
      maxNetworkRetries: 0,
    })
    const intent = await stripe.paymentIntents.create(
      { amount: 100, currency: "eur" },
      { idempotencyKey: `smoke-${id}` },
    )
    if (!intent.id.startsWith("pi_") || intent.amount !== 100) throw new Error(`got ${JSON.stringify(intent)}`)
    return `PaymentIntent ${intent.id} created (stripe-mock)`
  }),
)

const failed = results.filter((ok) => !ok).length
console.log(`${results.length - failed} passed, ${failed} failed`)
process.exit(failed ? 1 : 0)
