import { Context, Duration, Effect, Layer, Schema, type Scope } from "effect"
import kafkajs from "kafkajs"
import { KAFKA_TOPIC_CHARS, kafkaTopicPrefix } from "./Config.ts"

/** How a process reaches Kafka and how the topics it creates are shaped. */
export interface KafkaOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  /**
   * This environment's prefix of every topic and consumer group name on the cluster; default `KAFKA_TOPIC_PREFIX`
   * (none when unset). The platform's code, manifests and events keep the names without it.
   */
  readonly topicPrefix?: string
  /** Partitions of topics this process creates (existing topics are left alone); default 3. */
  readonly partitions?: number
  /** Replication of topics this process creates; default the broker's `default.replication.factor`. */
  readonly replicationFactor?: number
  readonly connectionTimeoutMs?: number
  readonly requestTimeoutMs?: number
  /** kafkajs's retry of connections and requests; default `DEFAULT_RETRY`. */
  readonly retry?: kafkajs.RetryOptions
}

/**
 * kafkajs's retry unless configured: 5 retries from 100 ms, at most 1 s apart (about 2.5 s in all). kafkajs's own
 * default waits up to 30 s between attempts, and a consumer that gave up is restarted after its last wait: after a
 * broker restart, consumers came back up to ~10 s late. (Under NODE_ENV=test kafkajs uses other defaults, so tests
 * would not see that; an explicit value is the same everywhere.)
 */
export const DEFAULT_RETRY: kafkajs.RetryOptions = { initialRetryTime: 100, maxRetryTime: 1_000, retries: 5 }

/** The longest topic name Kafka accepts. */
export const MAX_TOPIC_LENGTH = 249

/** A Kafka operation failed (broker unreachable, topic creation refused); carries the kafkajs error as cause. */
export class KafkaError extends Schema.TaggedError<KafkaError>()("KafkaError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** Wraps a kafkajs call, mapping its rejection to `KafkaError`. */
export const tryKafka = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, KafkaError> =>
  Effect.tryPromise({
    try: f,
    catch: (cause) =>
      new KafkaError({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`, cause }),
  })

/**
 * A kafkajs client's lifecycle calls (connect, subscribe, run) remembered, so that closing it waits for the one in
 * flight: a client stopped or disconnected while it still connects or joins its group hangs for good (kafkajs#967,
 * #1639), and an interrupted start leaves that call running. `call` is `tryKafka`, remembered; `settled` waits for the
 * last call, at most `within`.
 */
export const lifecycle = () => {
  let last: Promise<unknown> = Promise.resolve()
  return {
    call: <A>(what: string, f: () => Promise<A>): Effect.Effect<A, KafkaError> =>
      tryKafka(what, () => {
        const call = f()
        last = call.catch(() => undefined)
        return call
      }),
    settled: (within: Duration.Input): Effect.Effect<void> =>
      Effect.promise(() => last).pipe(Effect.timeoutOption(within), Effect.asVoid),
  }
}

/** How long closing waits for a kafkajs call in flight, then for a disconnect. */
const CLOSE_WITHIN = Duration.seconds(3)

/** Disconnects a kafkajs client, at most `within`: a closing process does not wait on kafkajs for ever. */
export const disconnect = (client: { disconnect(): Promise<void> }, within: Duration.Input): Effect.Effect<void> =>
  Effect.promise(() => client.disconnect().catch(() => undefined)).pipe(Effect.timeoutOption(within), Effect.asVoid)

/** One process's Kafka client: a kafkajs instance logging through Effect, topic creation and scoped producers. */
export class Kafka extends Context.Service<
  Kafka,
  {
    readonly client: kafkajs.Kafka
    /**
     * The cluster's name of one of the platform's topics (`auth.events`): with this environment's prefix. The one place
     * the prefix is applied to topics; every kafkajs call of the platform names topics through it.
     */
    topic(name: string): string
    /** The cluster's name of one of the platform's consumer groups: with this environment's prefix. */
    group(id: string): string
    /** Fails, naming `KAFKA_TOPIC_PREFIX`, when the cluster's name of one of `topics` is longer than Kafka accepts. */
    checkTopics(topics: ReadonlyArray<string>): Effect.Effect<void, KafkaError>
    /** Creates those of `topics` (the platform's names) that do not exist yet, with the configured partitions. */
    ensureTopics(topics: ReadonlyArray<string>): Effect.Effect<void, KafkaError>
    /** Runs `f` on an admin connection of its own, closed after it. */
    admin<A>(what: string, f: (admin: kafkajs.Admin) => Promise<A>): Effect.Effect<A, KafkaError>
    /** A producer, not yet connected, disconnected when the scope closes. */
    producer(config?: kafkajs.ProducerConfig): Effect.Effect<kafkajs.Producer, never, Scope.Scope>
    /** Asks the cluster for its brokers over a long-lived admin connection: the readiness check. */
    readonly ping: Effect.Effect<void, KafkaError>
  }
>()("shared/Kafka") {
  /**
   * A client for `options.brokers`; kafkajs logs (warn and above) go to the Effect logger of the layer. A function
   * reads `KAFKA_TOPIC_PREFIX` once validated with its other keys (`Config.base`), so a bad one here is a defect.
   */
  static readonly layer = (options: KafkaOptions) =>
    Layer.effect(
      Kafka,
      Effect.gen(function* () {
        const context = yield* Effect.context<never>()
        const prefix = options.topicPrefix ?? (yield* Effect.orDie(kafkaTopicPrefix))
        if (!KAFKA_TOPIC_CHARS.test(prefix)) {
          return yield* Effect.die(new Error(`Kafka topic prefix ${JSON.stringify(prefix)}: only a-z A-Z 0-9 . _ -`))
        }
        const client = new kafkajs.Kafka({
          brokers: [...options.brokers],
          clientId: options.clientId,
          connectionTimeout: options.connectionTimeoutMs ?? 3_000,
          requestTimeout: options.requestTimeoutMs ?? 30_000,
          retry: options.retry ?? DEFAULT_RETRY,
          logLevel: kafkajs.logLevel.WARN,
          logCreator: logCreator(context),
        })
        const topic = (name: string) => `${prefix}${name}`
        const group = (id: string) => `${prefix}${id}`

        const checkTopics = (topics: ReadonlyArray<string>) => {
          const tooLong = topics.map(topic).filter((name) => name.length > MAX_TOPIC_LENGTH)
          return tooLong.length === 0
            ? Effect.void
            : Effect.fail(
                new KafkaError({
                  message: `KAFKA_TOPIC_PREFIX: ${tooLong.map((name) => `${name} is ${name.length} characters`).join(", ")}, above Kafka's ${MAX_TOPIC_LENGTH}`,
                  cause: undefined,
                }),
              )
        }

        // An admin client for one operation, disconnected once its call has settled (also when interrupted).
        const admin = <A>(what: string, f: (admin: kafkajs.Admin) => Promise<A>) =>
          Effect.acquireUseRelease(
            Effect.sync(() => ({ admin: client.admin(), calls: lifecycle() })),
            ({ admin, calls }) => calls.call(what, async () => f(await admin.connect().then(() => admin))),
            ({ admin, calls }) => Effect.andThen(calls.settled(CLOSE_WITHIN), disconnect(admin, CLOSE_WITHIN)),
          )

        const ensured = new Set<string>()

        const ensureTopics = Effect.fn("Kafka.ensureTopics")(function* (topics: ReadonlyArray<string>) {
          const missing = [...new Set(topics)].filter((name) => !ensured.has(name))
          if (missing.length === 0) return
          yield* checkTopics(missing)
          yield* admin(`creating topics ${missing.map(topic).join(", ")}`, async (admin) => {
            // Asking first keeps kafkajs from logging an error for every topic that already exists.
            const existing = new Set(await admin.listTopics())
            const absent = missing.map(topic).filter((name) => !existing.has(name))
            if (absent.length === 0) return
            await admin.createTopics({
              waitForLeaders: true,
              topics: absent.map((name) => ({
                topic: name,
                numPartitions: options.partitions ?? 3,
                ...(options.replicationFactor !== undefined ? { replicationFactor: options.replicationFactor } : {}),
              })),
            })
          })
          for (const name of missing) ensured.add(name)
        })

        const producer = (config?: kafkajs.ProducerConfig) =>
          Effect.acquireRelease(
            Effect.sync(() =>
              client.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner, ...config }),
            ),
            (p) => disconnect(p, CLOSE_WITHIN),
          )

        // One admin connection for readiness probes, opened on first use, reopened after a failure.
        const probe = client.admin()
        const probeCalls = lifecycle()
        let probeConnected = false
        yield* Effect.addFinalizer(() =>
          Effect.andThen(probeCalls.settled(CLOSE_WITHIN), disconnect(probe, CLOSE_WITHIN)),
        )
        const ping = Effect.gen(function* () {
          if (!probeConnected) {
            yield* probeCalls.call("connecting the admin client", () => probe.connect())
            probeConnected = true
          }
          yield* probeCalls.call("describing the cluster", () => probe.describeCluster())
        }).pipe(
          Effect.tapError(() =>
            Effect.andThen(
              Effect.sync(() => {
                probeConnected = false
              }),
              disconnect(probe, CLOSE_WITHIN),
            ),
          ),
          Effect.asVoid,
        )

        return Kafka.of({ client, topic, group, checkTopics, ensureTopics, admin, producer, ping })
      }),
    )
}

// Producers with bounded retries trip this warning; the bound is deliberate (the relay re-sends from the outbox and
// consumers dedupe by event id), so it is not worth a line on every start.
const BOUNDED_RETRIES_WARNING = "Limiting retries for the idempotent producer"

// kafkajs logs every refused connection attempt, twice, as an error: a broker away for 10 s made ~450 error lines in two
// functions. Debug instead: the operation that gives up reports it (a consumer's restart, the relay's and the
// subscription's retry warnings), and readiness reads "degraded".
// kafkajs's levels as the platform's log calls (below INFO: debug).
const logAt: Partial<Record<kafkajs.logLevel, typeof Effect.logInfo>> = {
  [kafkajs.logLevel.ERROR]: Effect.logError,
  [kafkajs.logLevel.WARN]: Effect.logWarning,
  [kafkajs.logLevel.INFO]: Effect.logInfo,
}

const isRetryNoise = (namespace: string, message: string) =>
  (namespace === "Connection" && message.startsWith("Connection error")) ||
  (namespace === "BrokerPool" && message.startsWith("Failed to connect to seed broker"))

// A consumer crash kafkajs restarts on its own is a warning; one it does not restart, the bus logs as an error.
const isConsumerRestart = (namespace: string, message: string) =>
  namespace === "Consumer" && (message.startsWith("Crash: ") || message.startsWith("Restarting the consumer"))

/** A kafkajs `logCreator` writing through the Effect logger found in `context`, tagged `component: kafkajs`. */
export const logCreator =
  (context: Context.Context<never>): kafkajs.logCreator =>
  () =>
  ({ namespace, level, log }) => {
    const { message, timestamp: _timestamp, logger: _logger, stack: _stack, error, ...fields } = log
    if (message.startsWith(BOUNDED_RETRIES_WARNING)) return
    const write = isRetryNoise(namespace, message)
      ? Effect.logDebug
      : isConsumerRestart(namespace, message)
        ? Effect.logWarning
        : (logAt[level] ?? Effect.logDebug)
    Effect.runForkWith(context)(
      write(message, { ...fields, ...(error !== undefined ? { error: String(error) } : {}) }).pipe(
        Effect.annotateLogs({ component: "kafkajs", ...(namespace ? { kafka_namespace: namespace } : {}) }),
      ),
    )
  }
