import { Duration, Effect, Layer, Option } from "effect"
import { topicOf } from "./CloudEvent.ts"
import * as Cfg from "./Config.ts"
import { Db, type DbOptions } from "./Db.ts"
import { EventBus } from "./EventBus.ts"
import { Health, register } from "./Health.ts"
import * as Logging from "./Logging.ts"
import { type Migration, migrate } from "./Migrator.ts"
import { consumesTopic, EVERY_EVENT, type ModuleManifest } from "./Module.ts"
import * as PgEventBus from "./PgEventBus.ts"
import { callersOf, ServiceIdentity, type ServiceIdentityConfig } from "./ServiceIdentity.ts"
import * as Telemetry from "./Telemetry.ts"

/** What the kernel needs to know to stand up a function's infrastructure. */
export interface KernelOptions {
  readonly service: string
  readonly version: string
  readonly logLevel: Logging.LoggingOptions["level"]
  readonly logPretty?: boolean
  readonly db: DbOptions
  readonly migrations: ReadonlyArray<Migration>
}

/** Applies the function's migrations at start (under the advisory lock) and registers the Postgres readiness check. */
export const database = (options: KernelOptions) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const db = yield* Db
      const applied = yield* migrate(options.migrations)
      if (applied.length > 0) yield* Effect.logInfo("migrations applied", { migrations: applied })
      yield* register("postgres", db.query("SELECT 1"))
    }),
  ).pipe(Layer.provideMerge(Db.layer(options.db)))

/** Logging, tracing/metrics export and the health registry: the base every function stands on. */
export const base = (
  options: Pick<KernelOptions, "service" | "version" | "logLevel" | "logPretty"> & {
    readonly otelEndpoint?: Option.Option<URL>
  },
) =>
  Layer.mergeAll(
    Health.layer,
    Telemetry.layer({
      service: options.service,
      version: options.version,
      endpoint: options.otelEndpoint ?? Option.none(),
    }),
  ).pipe(
    Layer.provideMerge(
      Logging.layer({ service: options.service, level: options.logLevel, pretty: options.logPretty ?? false }),
    ),
  )

/**
 * The event side of a function. With Kafka brokers: the Kafka bus for subscriptions and, when the manifest publishes
 * anything, the outbox relay publishing `<service>.events`, imported only then (kafkajs is heavy). Without (the
 * embedded default): the Postgres-backed bus reading producers' outboxes.
 */
export const events = (manifest: EventsManifest, config: EventsConfig) =>
  declaredConsumer(manifest).pipe(Layer.provide(bus(manifest, config)))

/** What `events` reads of a manifest: its name, what it publishes and consumes. */
export type EventsManifest = Pick<ModuleManifest, "name" | "events">

/** What `events` reads of a function's config (`Config.base`): the Kafka brokers, if any, and how long closing waits. */
export interface EventsConfig {
  readonly kafkaBrokers: Option.Option<ReadonlyArray<string>>
  /** How long closing a subscription waits for its work in flight; default 10 s. */
  readonly shutdownTimeoutMs?: number
}

/**
 * The bus as a function may use it: each subscription says the event types it handles, and a type its manifest's
 * `events.consumes` does not declare (or a subscription that says none) is a defect that stops the start, so the
 * manifest cannot drift from the consumers the code runs. Events of other types are passed over without the handler.
 */
export const declaredConsumer = (manifest: Pick<ModuleManifest, "name" | "events">) =>
  Layer.effect(
    EventBus,
    Effect.gen(function* () {
      const bus = yield* EventBus
      const everything = manifest.events.consumes.includes(EVERY_EVENT)
      return EventBus.of({
        subscribe: (options) => {
          const { types, topic } = options
          const refuse = (what: string) => Effect.die(new Error(`${manifest.name} subscribes to ${topic}${what}`))
          if (types === undefined) return refuse(" without saying which event types it handles (types)")
          if (!consumesTopic(manifest, topic)) return refuse(", which its manifest's events.consumes omits")
          if (types === EVERY_EVENT) {
            return everything
              ? bus.subscribe(options)
              : refuse(" for every event type, which its manifest does not consume")
          }
          const undeclared = types.filter((t) => !(everything || manifest.events.consumes.includes(t)))
          const elsewhere = types.filter((t) => `${t.slice(0, t.indexOf("."))}.events` !== topic)
          if (undeclared.length > 0)
            return refuse(` for ${undeclared.join(", ")}, which its manifest's events.consumes omits`)
          if (elsewhere.length > 0) return refuse(` for ${elsewhere.join(", ")}, which another topic carries`)
          const handled = new Set(types)
          return bus.subscribe({
            ...options,
            handler: (event) => (handled.has(event.type) ? options.handler(event) : Effect.void),
          })
        },
      })
    }),
  )

const bus = (manifest: EventsManifest, config: EventsConfig) =>
  Option.match(config.kafkaBrokers, {
    onNone: () => PgEventBus.layer(drained(config)),
    onSome: (brokers) =>
      Layer.unwrap(
        Effect.promise(async () => {
          const [{ Kafka }, KafkaEventBus, { OutboxRelay }] = await Promise.all([
            import("./Kafka.ts"),
            import("./KafkaEventBus.ts"),
            import("./OutboxRelay.ts"),
          ])
          // Not critical: without Kafka a function serves every route (events wait in the outbox, consumers resume
          // when the broker is back), so an outage reads "degraded" rather than pulling every instance.
          const readiness = Layer.effectDiscard(
            Effect.flatMap(Effect.service(Kafka), (kafka) => register("kafka", kafka.ping, { critical: false })),
          )
          const service = manifest.name
          const relay =
            manifest.events.publishes.length > 0 ? OutboxRelay.layer({ topics: [topicOf(service)] }) : Layer.empty
          return Layer.mergeAll(relay, KafkaEventBus.layer(drained(config)), readiness).pipe(
            Layer.provide(Kafka.layer({ brokers, clientId: service })),
          )
        }),
      ),
  })

const drained = (config: EventsConfig) =>
  config.shutdownTimeoutMs === undefined ? {} : { drainTimeout: Duration.millis(config.shutdownTimeoutMs) }

/** What `foundation` reads from a function's validated config (`Config.base` + `Config.database`). */
export interface FoundationConfig extends Cfg.PoolConfig {
  readonly logLevel: Logging.LoggingOptions["level"]
  readonly logPretty: boolean
  readonly otelEndpoint: Option.Option<URL>
  readonly databaseUrl: DbOptions["url"]
}

/** A function's foundation from its manifest and config: `base` plus `database` with its migrations applied. */
export const foundation = (
  manifest: { readonly name: string; readonly version: string; readonly migrations: ReadonlyArray<Migration> },
  config: FoundationConfig,
) => {
  const kernel = {
    service: manifest.name,
    version: manifest.version,
    logLevel: config.logLevel,
    logPretty: config.logPretty,
    otelEndpoint: config.otelEndpoint,
  }
  return database({
    ...kernel,
    db: Cfg.dbOptions(config.databaseUrl, config),
    migrations: manifest.migrations,
  }).pipe(Layer.provideMerge(base(kernel)))
}

/**
 * A function's identity on internal calls (`ServiceIdentity`): its key from config, and whom it serves: the functions
 * of the registry whose manifests list it in `dependsOn`.
 */
export const identity = (
  manifest: Pick<ModuleManifest, "name">,
  registry: ReadonlyArray<Pick<ModuleManifest, "name" | "dependsOn">>,
  config: ServiceIdentityConfig,
) =>
  ServiceIdentity.layer({
    name: manifest.name,
    callers: callersOf(manifest.name, registry),
    functions: registry.map((m) => m.name),
    config,
  })
