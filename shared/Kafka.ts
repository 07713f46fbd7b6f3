import { Context, Effect, Layer, Schema, type Scope } from "effect"
import kafkajs from "kafkajs"

/** How a process reaches Kafka and how the topics it creates are shaped. */
export interface KafkaOptions {
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
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

/** One process's Kafka client: a kafkajs instance logging through Effect, topic creation and scoped producers. */
export class Kafka extends Context.Service<
  Kafka,
  {
    readonly client: kafkajs.Kafka
    /** Creates those of `topics` that do not exist yet, with the configured partitions; remembers the ones it has seen. */
    ensureTopics(topics: ReadonlyArray<string>): Effect.Effect<void, KafkaError>
    /** A producer, not yet connected, disconnected when the scope closes. */
    producer(config?: kafkajs.ProducerConfig): Effect.Effect<kafkajs.Producer, never, Scope.Scope>
    /** Asks the cluster for its brokers over a long-lived admin connection: the readiness check. */
    readonly ping: Effect.Effect<void, KafkaError>
  }
>()("shared/Kafka") {
  /** A client for `options.brokers`; kafkajs logs (warn and above) go to the Effect logger of the layer. */
  static readonly layer = (options: KafkaOptions) =>
    Layer.effect(
      Kafka,
      Effect.gen(function* () {
        const context = yield* Effect.context<never>()
        const client = new kafkajs.Kafka({
          brokers: [...options.brokers],
          clientId: options.clientId,
          connectionTimeout: options.connectionTimeoutMs ?? 3_000,
          requestTimeout: options.requestTimeoutMs ?? 30_000,
          retry: options.retry ?? DEFAULT_RETRY,
          logLevel: kafkajs.logLevel.WARN,
          logCreator: logCreator(context),
        })
        const ensured = new Set<string>()

        const ensureTopics = Effect.fn("Kafka.ensureTopics")(function* (topics: ReadonlyArray<string>) {
          const missing = [...new Set(topics)].filter((topic) => !ensured.has(topic))
          if (missing.length === 0) return
          const admin = client.admin()
          yield* Effect.acquireUseRelease(
            tryKafka("connecting the admin client", () => admin.connect()),
            () =>
              tryKafka(`creating topics ${missing.join(", ")}`, async () => {
                // Asking first keeps kafkajs from logging an error for every topic that already exists.
                const existing = new Set(await admin.listTopics())
                const absent = missing.filter((topic) => !existing.has(topic))
                if (absent.length === 0) return
                await admin.createTopics({
                  waitForLeaders: true,
                  topics: absent.map((topic) => ({
                    topic,
                    numPartitions: options.partitions ?? 3,
                    ...(options.replicationFactor !== undefined
                      ? { replicationFactor: options.replicationFactor }
                      : {}),
                  })),
                })
              }),
            () => Effect.promise(() => admin.disconnect()),
          )
          for (const topic of missing) ensured.add(topic)
        })

        const producer = (config?: kafkajs.ProducerConfig) =>
          Effect.acquireRelease(
            Effect.sync(() =>
              client.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner, ...config }),
            ),
            (p) => Effect.promise(() => p.disconnect().catch(() => undefined)),
          )

        // One admin connection for readiness probes, opened on first use, reopened after a failure.
        const probe = client.admin()
        let probeConnected = false
        yield* Effect.addFinalizer(() => Effect.promise(() => probe.disconnect().catch(() => undefined)))
        const ping = Effect.gen(function* () {
          if (!probeConnected) {
            yield* tryKafka("connecting the admin client", () => probe.connect())
            probeConnected = true
          }
          yield* tryKafka("describing the cluster", () => probe.describeCluster())
        }).pipe(
          Effect.tapError(() =>
            Effect.promise(() => {
              probeConnected = false
              return probe.disconnect().catch(() => undefined)
            }),
          ),
          Effect.asVoid,
        )

        return Kafka.of({ client, ensureTopics, producer, ping })
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
