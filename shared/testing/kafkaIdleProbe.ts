// Run in a fresh process by KafkaEventBus.test.ts (Node reports a TimeoutNegativeWarning once per process, so only a
// new process shows it): talks to KAFKA_BROKERS through shared/Kafka.ts, then idles one second and prints, as JSON,
// the process warnings seen and how often kafkajs's request queues checked for pending requests while idle.
import { randomBytes } from "node:crypto"
import { createRequire } from "node:module"
import { Context, Effect, Layer } from "effect"
import { Kafka, tryKafka } from "../Kafka.ts"

const warnings: Array<string> = []
process.on("warning", (warning) => warnings.push(`${warning.name}: ${warning.message}`))

const RequestQueue = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js") as {
  prototype: { checkPendingRequests(this: unknown): void }
}
let checks = 0
const check = RequestQueue.prototype.checkPendingRequests
RequestQueue.prototype.checkPendingRequests = function (this: unknown) {
  checks++
  return check.call(this)
}

const brokers = (process.env.KAFKA_BROKERS ?? "").split(",")
const idleChecks = await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const kafka = Context.get(yield* Layer.build(Kafka.layer({ brokers, clientId: "idle-probe" })), Kafka)
      yield* kafka.ping
      const topic = `idle_probe_${randomBytes(4).toString("hex")}.events`
      yield* kafka.ensureTopics([topic])
      const producer = yield* kafka.producer()
      yield* tryKafka("connecting", () => producer.connect())
      yield* tryKafka("sending", () => producer.send({ topic, messages: [{ value: "x" }] }))
      checks = 0
      yield* Effect.sleep("1 second")
      return checks
    }),
  ),
)
process.stdout.write(`${JSON.stringify({ warnings, idleChecks })}\n`)
