import { existsSync } from "node:fs"
import { Config, ConfigProvider, Effect, Option, Redacted, Schema } from "effect"
import { type DbOptions, DEFAULT_ACQUIRE_TIMEOUT_MS, DEFAULT_TIMEOUT_MS, SQL_IDENTIFIER } from "./Db.ts"
import * as ErrorBus from "./ErrorBus.ts"
import { grpcUrlKey, type ModuleManifest } from "./Module.ts"
import * as ServiceIdentity from "./ServiceIdentity.ts"
import * as ServiceRegistry from "./ServiceRegistry.ts"
import { entryProblem } from "./TrustedProxies.ts"

/** Raised at start when one or more configuration keys are missing or invalid; lists every problem at once. */
export class ConfigInvalid extends Schema.TaggedError<ConfigInvalid>()("ConfigInvalid", {
  problems: Schema.Array(Schema.String),
}) {
  override get message() {
    return `invalid configuration:\n${this.problems.map((p) => `  - ${p}`).join("\n")}`
  }
}

type Spec = Record<string, Config.Config<unknown>>
type Loaded<S extends Spec> = { readonly [K in keyof S]: S[K] extends Config.Config<infer A> ? A : never }

/** Reads every key of a spec independently, so one bad key never hides another; fails with all problems. */
export const load = <S extends Spec>(spec: S): Effect.Effect<Loaded<S>, ConfigInvalid> =>
  Effect.gen(function* () {
    const provider = yield* ConfigProvider.ConfigProvider
    const values: Record<string, unknown> = {}
    const problems: Array<string> = []
    for (const [key, config] of Object.entries(spec)) {
      const result = yield* Effect.result(config.parse(provider))
      if (result._tag === "Success") values[key] = result.success
      else problems.push(describe(result.failure))
    }
    if (problems.length === 0) problems.push(...developmentDefaults(values))
    // A key several settings read (the service registry's, under every gRPC address) is listed once.
    if (problems.length > 0) return yield* new ConfigInvalid({ problems: [...new Set(problems)] })
    return values as Loaded<S>
  })

const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "0.0.0.0"])

/**
 * With `NODE_ENV=production`, the development defaults a loaded configuration would fall back to, as problems naming
 * their keys: the development service key (public knowledge), the in-process event bus where Kafka is expected (a
 * function with a database), the dev mailbox instead of SMTP, a localhost `APP_BASE_URL` in mails, the embedded folder
 * as the blob store of a function that stores blobs (`BlobStore.config`).
 */
export const developmentDefaults = (values: Record<string, unknown>): Array<string> => {
  if (values.env !== "production") return []
  const unset = (key: string) => key in values && Option.isOption(values[key]) && Option.isNone(values[key])
  const problems: Array<string> = []
  if (unset("serviceKey")) problems.push("SERVICE_KEY: required in production (the development key is public)")
  if (unset("servicePublicKeys")) {
    problems.push("SERVICE_PUBLIC_KEYS: required in production (callers would be checked against development keys)")
  }
  if (Redacted.isRedacted(values.databaseUrl) && unset("kafkaBrokers")) {
    problems.push("KAFKA_BROKERS: required in production (the Postgres-backed event bus is the development default)")
  }
  if (unset("smtpUrl")) problems.push("SMTP_URL: required in production (mail would go to the dev mailbox)")
  if (unset("s3Bucket")) {
    problems.push("S3_BUCKET: required in production (files would go to a folder of the container, the embedded store)")
  }
  if (values.appBaseUrl instanceof URL && LOCAL_HOSTS.has(values.appBaseUrl.hostname)) {
    problems.push("APP_BASE_URL: must be the platform's public URL in production, not localhost")
  }
  return problems
}

// "SchemaError(Expected string at ["DATABASE_URL"])" -> "DATABASE_URL: missing"; values are never echoed (secrets).
const describe = (error: Config.ConfigError): string => {
  // A key's own refusal (`ConfigProvider.SourceError`, e.g. the registry's namespace) is said as it is.
  const text = error.message
    .replace(/\s+/g, " ")
    .trim()
    .replace(/^SourceError: /, "")
  const match = /^SchemaError\((.*) at \["(.+?)"\]\)$/.exec(text)
  if (!match) return text
  const [, expected = "", key = ""] = match
  return process.env[key] === undefined ? `${key}: missing` : `${key}: ${expected.replace(/^Expected/, "expected")}`
}

/** Loads `.env` from the working directory into the environment outside production (12-factor: env wins). */
export const loadDotEnv = (path = ".env"): void => {
  if (process.env.NODE_ENV === "production" || !existsSync(path)) return
  const before = { ...process.env }
  process.loadEnvFile(path)
  Object.assign(process.env, before)
}

/** A secret read from the environment; its value never reaches logs or error messages. */
export const secret = (name: string): Config.Config<Redacted.Redacted<string>> => Config.Redacted(name)

/** An integer setting that must lie within [minimum, maximum] (a bad value is reported with the others at start). */
export const intBetween = (name: string, minimum: number, maximum: number) =>
  Config.schema(
    Schema.NumberFromString.check(
      Schema.isInt({ message: "Expected an integer" }),
      Schema.isBetween({ minimum, maximum }, { message: `Expected an integer from ${minimum} to ${maximum}` }),
    ),
    name,
  )

/** A number setting within [minimum, maximum] (fractions allowed: `0.5` days). */
export const numberBetween = (name: string, minimum: number, maximum: number) =>
  Config.schema(
    Schema.NumberFromString.check(
      Schema.isBetween({ minimum, maximum }, { message: `Expected a number from ${minimum} to ${maximum}` }),
    ),
    name,
  )

/** A Postgres schema name: plain lower-case identifier (it is interpolated into SQL). */
export const schemaName = (name: string) =>
  Config.schema(
    Schema.String.check(
      Schema.isPattern(SQL_IDENTIFIER, {
        message: "Expected a lower-case SQL identifier ([a-z_][a-z0-9_]*)",
      }),
    ),
    name,
  )

/** The default schema of a function: its name with `-` turned into `_`. */
export const defaultSchema = (functionName: string) => functionName.replaceAll("-", "_")

/** A comma-separated list setting: items trimmed, empty ones dropped. */
export const commaList = (name: string) => Config.String(name).pipe(Config.map(splitList))

const splitList = (list: string): ReadonlyArray<string> =>
  list
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0)

/** The characters Kafka allows in a topic name. */
export const KAFKA_TOPIC_CHARS = /^[a-zA-Z0-9._-]*$/

/**
 * `KAFKA_TOPIC_PREFIX`: put before the name of every Kafka topic and consumer group of this environment (`staging.`),
 * so that environments can share a cluster; default none. Only Kafka's topic characters; the length of each whole name
 * is checked by the Kafka client where the topics are known.
 */
export const kafkaTopicPrefix = Config.schema(
  Schema.String.check(
    Schema.isPattern(KAFKA_TOPIC_CHARS, {
      message: "Expected only the characters of Kafka topic names: a-z A-Z 0-9 . _ -",
    }),
  ),
  "KAFKA_TOPIC_PREFIX",
).pipe(Config.withDefault(""))

/** Keys every function reads: environment, log level, ports, trace export, event brokers, error reporting. */
export const base = (defaults: { readonly httpPort: number; readonly grpcPort?: number }) => ({
  env: Config.Literals(["development", "test", "production"], "NODE_ENV").pipe(Config.withDefault("development")),
  logLevel: Config.Literals(["trace", "debug", "info", "warn", "error", "fatal"], "LOG_LEVEL").pipe(
    Config.withDefault("info"),
  ),
  logPretty: Config.Boolean("LOG_PRETTY").pipe(Config.withDefault(false)),
  httpPort: Config.Port("HTTP_PORT").pipe(Config.withDefault(defaults.httpPort)),
  grpcPort: Config.Port("GRPC_PORT").pipe(Config.withDefault(defaults.grpcPort ?? 0)),
  shutdownTimeoutMs: Config.Int("SHUTDOWN_TIMEOUT_MS").pipe(Config.withDefault(ErrorBus.DEFAULT_SHUTDOWN_TIMEOUT_MS)),
  /** Larger request bodies get 413. */
  maxBodyBytes: Config.Int("MAX_BODY_BYTES").pipe(Config.withDefault(1024 * 1024)),
  /** Proxies whose X-Forwarded-For names the client (the gateway): addresses or CIDR ranges; none by default. */
  trustedProxies: Config.schema(
    Schema.String.check(
      Schema.makeFilter(
        (list: string) =>
          splitList(list)
            .map(entryProblem)
            .find((p) => p !== undefined) ?? true,
      ),
    ),
    "TRUSTED_PROXIES",
  ).pipe(Config.map(splitList), Config.withDefault([] as ReadonlyArray<string>)),
  /** OTLP/HTTP collector; unset = spans stay in-process. */
  otelEndpoint: Config.option(Config.URL("OTEL_EXPORTER_OTLP_ENDPOINT")),
  /** Comma-separated brokers; unset = the Postgres-backed event bus (embedded default). */
  kafkaBrokers: Config.option(commaList("KAFKA_BROKERS")),
  /** Validated here with the other keys; the Kafka client applies it (shared/Kafka.ts). */
  kafkaTopicPrefix,
  ...ServiceIdentity.config(),
  /** SENTRY_DSN and the rest of the error bus's keys (docs/errors.md). */
  ...ErrorBus.config(),
  /** `SERVICE_REGISTRY` (static, kubernetes, etcd) and its keys: where the other functions are found. */
  serviceRegistry: ServiceRegistry.config,
  ...ServiceRegistry.checks,
})

/**
 * The gRPC address of a function this one depends on, as the service registry finds it (`SERVICE_REGISTRY`): static
 * reads `<NAME>_GRPC_URL`, default `localhost:<its manifest port>` (the port is said once, in that function's
 * manifest); kubernetes names its headless Service (`dns:///`), etcd its live instances (`etcd://`).
 */
export const grpcAddress = (name: string, manifests: ReadonlyArray<Pick<ModuleManifest, "name" | "ports">>) => {
  const port = manifests.find((m) => m.name === name)?.ports.grpc
  if (port === undefined) throw new Error(`no function ${name} with a gRPC port in the registry`)
  const configured = Config.String(grpcUrlKey(name)).pipe(Config.withDefault(`localhost:${port}`))
  return ServiceRegistry.config.pipe(
    Config.flatMap((settings) => ServiceRegistry.grpcAddressOf(settings, name, port, configured)),
  )
}

/**
 * The local HTTP origin of a function, `http://localhost:<its manifest HTTP port>`: the default of the addresses that
 * point at it (the port is said once, in that function's manifest).
 */
export const localOrigin = (name: string, manifests: ReadonlyArray<Pick<ModuleManifest, "name" | "ports">>) => {
  const port = manifests.find((m) => m.name === name)?.ports.http
  if (port === undefined) throw new Error(`no function ${name} in the registry`)
  return `http://localhost:${port}`
}

/** Keys of a function with a database: its Postgres, the schema it owns (default: its name) and its pool. */
export const database = (functionName: string, defaults: PoolDefaults = {}) => ({
  databaseUrl: secret("DATABASE_URL"),
  dbSchema: schemaName("DB_SCHEMA").pipe(Config.withDefault(defaultSchema(functionName))),
  ...pool(defaults),
  ...retention,
})

/**
 * How long the kernel's tables keep what has served its purpose (shared/Retention.ts): events in the outbox and the
 * inbox's deduplication rows, mail in the mail outbox; and how many rows one DELETE of the retention job removes.
 */
export const retention = {
  eventRetentionDays: numberBetween("EVENT_RETENTION_DAYS", 1, 3650).pipe(Config.withDefault(7)),
  inboxRetentionDays: numberBetween("INBOX_RETENTION_DAYS", 1, 3650).pipe(Config.withDefault(14)),
  mailRetentionDays: numberBetween("MAIL_RETENTION_DAYS", 1, 3650).pipe(Config.withDefault(7)),
  retentionBatchSize: intBetween("RETENTION_BATCH_SIZE", 1, 100_000).pipe(Config.withDefault(1_000)),
}

/** A function's own defaults for its pool's keys (the environment still overrides them). */
export interface PoolDefaults {
  readonly max?: number
  readonly queryTimeoutMs?: number
  readonly connectTimeoutMs?: number
  readonly acquireTimeoutMs?: number
}

/**
 * Keys of a Postgres pool: its size, and the client-side bounds of each query and each wait for a connection (by
 * default a hung database answers 503 in about a second, well under the gateway's route timeout).
 */
export const pool = (defaults: PoolDefaults = {}) => ({
  dbPoolMax: intBetween("DB_POOL_MAX", 1, 1000).pipe(Config.withDefault(defaults.max ?? 10)),
  dbQueryTimeoutMs: intBetween("DB_QUERY_TIMEOUT_MS", 50, 3_600_000).pipe(
    Config.withDefault(defaults.queryTimeoutMs ?? DEFAULT_TIMEOUT_MS),
  ),
  dbConnectTimeoutMs: intBetween("DB_CONNECT_TIMEOUT_MS", 50, 600_000).pipe(
    Config.withDefault(defaults.connectTimeoutMs ?? DEFAULT_TIMEOUT_MS),
  ),
  dbAcquireTimeoutMs: intBetween("DB_ACQUIRE_TIMEOUT_MS", 50, 600_000).pipe(
    Config.withDefault(defaults.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS),
  ),
})

/** A pool's settings as read from its keys (`pool`), with the schema the pool works in. */
export type PoolConfig = { readonly dbSchema: string } & {
  readonly [K in keyof ReturnType<typeof pool>]: Config.Success<ReturnType<typeof pool>[K]>
}

/** What a pool's keys say, as the options of `Db.layer`. */
export const dbOptions = (url: Redacted.Redacted<string>, config: PoolConfig): DbOptions => ({
  url,
  schema: config.dbSchema,
  poolMax: config.dbPoolMax,
  queryTimeoutMs: config.dbQueryTimeoutMs,
  connectTimeoutMs: config.dbConnectTimeoutMs,
  acquireTimeoutMs: config.dbAcquireTimeoutMs,
})

/** Where a verifier of access tokens finds the issuer's public keys (a JWKS URL). */
export const JWKS_URL_KEY = "AUTH_JWKS_URL"

/**
 * Keys of every service that verifies access tokens: the issuer and audience it expects, and the issuer's JWKS;
 * `issuer` is the signing function's local origin, the default of both addresses, and `jwksPath` where it serves its
 * keys (both declared by the signing function).
 */
export const authentication = (issuer: string, jwksPath: string) => ({
  ...tokenClaims(issuer),
  /** Where the issuer publishes its public signing keys. */
  authJwksUrl: Config.URL(JWKS_URL_KEY).pipe(Config.withDefault(new URL(`${issuer}${jwksPath}`))),
})

/**
 * What every access token carries and every verifier expects: its issuer and audience (auth signs with them); the
 * issuer defaults to `auth`, the signing function's local origin.
 */
export const tokenClaims = (auth: string) => ({
  jwtIssuer: Config.String("JWT_ISSUER").pipe(Config.withDefault(auth)),
  jwtAudience: Config.String("JWT_AUDIENCE").pipe(Config.withDefault("platform")),
})
