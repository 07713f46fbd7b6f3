import { randomBytes } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { hostname, networkInterfaces } from "node:os"
import { Config, ConfigProvider, Context, Effect, Layer, Option, Schema } from "effect"
import type { Etcd3 } from "etcd3"
import { acquireClient, etcdTarget, type Instance, InstanceWatch, register, servicesKey } from "./EtcdRegistry.ts"
import * as KubernetesNames from "./KubernetesNames.ts"
import type { ModuleManifest } from "./Module.ts"

/**
 * Where the functions are found (`SERVICE_REGISTRY`): `static` (the default, `<NAME>_URL` / `<NAME>_GRPC_URL` or this
 * host's manifest ports), `kubernetes` (the Services the Kubernetes render names) or `etcd` (each instance registers
 * itself under a lease; callers watch). docs/service-registry.md.
 */
export type RegistrySettings =
  | { readonly kind: "static" }
  | ({ readonly kind: "kubernetes" } & KubernetesNames.ClusterDns)
  | {
      readonly kind: "etcd"
      /** `http://host:port` each. */
      readonly endpoints: ReadonlyArray<string>
      /** Starts and ends with `/`; keys are `<prefix>services/<name>/<instance id>`. */
      readonly prefix: string
      readonly ttlSeconds: number
      /** The address other instances reach this one at. */
      readonly advertiseHost: string
    }

export const NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// A DNS label (a namespace) and a DNS name (the cluster domain), as Kubernetes accepts them.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const DNS_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const PREFIX = /^\/([A-Za-z0-9_.-]+\/)*$/
const ENDPOINT = /^(http:\/\/)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):\d{1,5}$/

const matching = (pattern: RegExp, message: string) => Schema.String.check(Schema.isPattern(pattern, { message }))

const endpointList = Config.schema(
  Schema.String.check(
    Schema.makeFilter((list: string) => {
      const entries = list.split(",").map((e) => e.trim())
      const bad = entries.find((e) => !ENDPOINT.test(e))
      return bad === undefined ? true : `Expected host:port or http://host:port entries, got "${bad}"`
    }),
  ),
  "ETCD_ENDPOINTS",
).pipe(
  Config.map((list) =>
    list.split(",").map((e) => {
      const entry = e.trim()
      return entry.startsWith("http://") ? entry : `http://${entry}`
    }),
  ),
)

/** The first non-internal IPv4 address of this host, else its name: where other instances reach this one. */
export const defaultAdvertiseHost = () => {
  for (const addresses of Object.values(networkInterfaces())) {
    const v4 = addresses?.find((a) => a.family === "IPv4" && !a.internal)
    if (v4 !== undefined) return v4.address
  }
  return hostname()
}

// The namespace: POD_NAMESPACE (the downward API), else the service account's namespace file, else a clear refusal.
const namespace = Config.option(
  Config.schema(matching(DNS_LABEL, "Expected a Kubernetes namespace (a DNS label: a-z, 0-9, -)"), "POD_NAMESPACE"),
).pipe(
  Config.flatMap((given) =>
    Option.isSome(given)
      ? Config.succeed(given.value)
      : existsSync(NAMESPACE_FILE)
        ? Config.succeed(readFileSync(NAMESPACE_FILE, "utf8").trim())
        : Config.fail(
            new ConfigProvider.SourceError({
              message: `POD_NAMESPACE: missing: SERVICE_REGISTRY=kubernetes needs the namespace (set POD_NAMESPACE from the downward API's metadata.namespace, or run in a pod with ${NAMESPACE_FILE})`,
            }),
          ),
  ),
)

const kind = Config.Literals(["static", "kubernetes", "etcd"], "SERVICE_REGISTRY").pipe(
  Config.withDefault("static" as const),
)

// The keys of each kind, read only when SERVICE_REGISTRY names it.
const kubernetesKeys = {
  namespace,
  clusterDomain: Config.schema(
    matching(DNS_NAME, "Expected a DNS name (cluster.local)"),
    "KUBERNETES_CLUSTER_DOMAIN",
  ).pipe(Config.withDefault("cluster.local")),
}
const etcdKeys = {
  endpoints: endpointList,
  prefix: Config.schema(
    matching(PREFIX, "Expected a key prefix starting and ending with / (/platform/)"),
    "SERVICE_REGISTRY_PREFIX",
  ).pipe(Config.withDefault("/platform/")),
  ttlSeconds: Config.schema(
    Schema.NumberFromString.check(
      Schema.isInt({ message: "Expected an integer" }),
      Schema.isBetween({ minimum: 2, maximum: 3600 }, { message: "Expected an integer from 2 to 3600" }),
    ),
    "SERVICE_TTL_SECONDS",
  ).pipe(Config.withDefault(10)),
  // The default is looked up only when the key is unset (not when the module loads).
  advertiseHost: Config.option(
    Config.schema(matching(/^[A-Za-z0-9.:-]+$/, "Expected a host name or an IP address"), "SERVICE_ADVERTISE_HOST"),
  ).pipe(Config.map(Option.getOrElse(defaultAdvertiseHost))),
}

/**
 * `SERVICE_REGISTRY` and the keys of the kind it names, read at start with the function's other keys (`Config.base`).
 * It stops at its first bad key: `checks` reports each of them.
 */
export const config: Config.Config<RegistrySettings> = kind.pipe(
  Config.flatMap((k): Config.Config<RegistrySettings> => {
    if (k === "static") return Config.succeed({ kind: k })
    if (k === "kubernetes") return Config.all(kubernetesKeys).pipe(Config.map((dns) => ({ kind: k, ...dns })))
    return Config.all(etcdKeys).pipe(Config.map((etcd) => ({ kind: k, ...etcd })))
  }),
)

const onlyFor = <A>(only: RegistrySettings["kind"], key: Config.Config<A>) =>
  kind.pipe(Config.flatMap((k) => (k === only ? Config.map(key, () => true) : Config.succeed(false))))

/**
 * Each key of the registry on its own, for `Config.load`'s list of problems (one bad key never hides another): true
 * when read and valid, false when its kind is not the one configured. `config` gives the values.
 */
export const checks = {
  serviceRegistryNamespace: onlyFor("kubernetes", kubernetesKeys.namespace),
  serviceRegistryClusterDomain: onlyFor("kubernetes", kubernetesKeys.clusterDomain),
  serviceRegistryEndpoints: onlyFor("etcd", etcdKeys.endpoints),
  serviceRegistryPrefix: onlyFor("etcd", etcdKeys.prefix),
  serviceRegistryTtl: onlyFor("etcd", etcdKeys.ttlSeconds),
  serviceRegistryAdvertiseHost: onlyFor("etcd", etcdKeys.advertiseHost),
}

/** A function's gRPC address under the registry: `static` reads `<NAME>_GRPC_URL` (given here as `configured`). */
export const grpcAddressOf = (
  settings: RegistrySettings,
  name: string,
  port: number,
  configured: Config.Config<string>,
): Config.Config<string> => {
  switch (settings.kind) {
    case "static":
      return configured
    case "kubernetes":
      return Config.succeed(KubernetesNames.grpcTarget(settings, name, port))
    case "etcd":
      return Config.succeed(etcdTarget(settings.endpoints, settings.prefix, name))
  }
}

/**
 * Where each function answers HTTP, by name. The gateway's upstream pools, its OpenAPI merge and its development
 * listings ask it; `subscribe` tells of instances coming and going (etcd).
 */
export class ServiceRegistry extends Context.Service<
  ServiceRegistry,
  {
    /** Whether the origins change while running (etcd): a pool per upstream then spreads over them, following. */
    readonly changing: boolean
    /** The names of every upstream the registry knows. */
    readonly names: ReadonlyArray<string>
    /** An origin of a function (the first live one); None when the registry knows none. */
    resolve(name: string): Effect.Effect<Option.Option<URL>>
    /**
     * What `resolve` would answer, when known without waiting (undefined otherwise: the proxy then resolves through
     * `resolve`). The gateway's hot path asks this first.
     */
    resolveNow(name: string): URL | undefined
    /** Every live origin of a function now. */
    origins(name: string): ReadonlyArray<URL>
    /** Calls `listener` with the live origins on every change; the returned function stops it. */
    subscribe(name: string, listener: (origins: ReadonlyArray<URL>) => void): () => void
  }
>()("shared/ServiceRegistry") {
  /** A fixed map of upstream base URLs (from configuration). */
  static readonly layerStatic = (urls: Readonly<Record<string, URL>>) =>
    Layer.succeed(
      ServiceRegistry,
      ServiceRegistry.of({
        changing: false,
        names: Object.keys(urls),
        resolve: (name) => Effect.succeed(Option.fromUndefinedOr(urls[name])),
        resolveNow: (name) => (Object.hasOwn(urls, name) ? urls[name] : undefined),
        origins: (name) => (Object.hasOwn(urls, name) ? [urls[name]!] : []),
        subscribe: () => () => {},
      }),
    )

  /** The Kubernetes Services of the upstreams (their ClusterIP names, as scripts/k8s.ts renders them). */
  static readonly layerKubernetes = (
    dns: KubernetesNames.ClusterDns,
    upstreams: ReadonlyArray<Pick<ModuleManifest, "name" | "ports">>,
  ) =>
    ServiceRegistry.layerStatic(
      Object.fromEntries(
        upstreams.map((m) => [m.name, new URL(KubernetesNames.httpOrigin(dns, m.name, m.ports.http))] as const),
      ),
    )

  /**
   * The live instances of each upstream, from etcd: read at start (a start fails when etcd does not answer within
   * 10 s), then watched.
   */
  static readonly layerEtcd = (settings: Extract<RegistrySettings, { kind: "etcd" }>, names: ReadonlyArray<string>) =>
    Layer.effect(
      ServiceRegistry,
      Effect.gen(function* () {
        const client = yield* etcdClient(settings.endpoints)
        const watches = new Map<string, InstanceWatch>()
        for (const name of names) {
          const watch = yield* Effect.acquireRelease(
            Effect.tryPromise({
              try: () => InstanceWatch.open(client, servicesKey(settings.prefix, name)),
              catch: (cause) => new EtcdUnavailable({ endpoints: settings.endpoints.join(","), cause }),
            }).pipe(timedOut(settings.endpoints)),
            (watch) => Effect.promise(() => watch.close()),
          )
          watches.set(name, watch)
        }
        const originsOf = (instances: ReadonlyArray<Instance>) => instances.map((i) => new URL(i.http))
        // Each upstream's live origins, parsed once per change (the hot path asks `resolveNow` per request).
        const live = new Map<string, ReadonlyArray<URL>>()
        for (const [name, watch] of watches) {
          live.set(name, originsOf(watch.instances))
          const stop = watch.subscribe((instances) => live.set(name, originsOf(instances)))
          yield* Effect.addFinalizer(() => Effect.sync(stop))
        }
        const origins = (name: string) => live.get(name) ?? []
        const resolveNow = (name: string) => origins(name)[0]
        return ServiceRegistry.of({
          changing: true,
          names,
          resolve: (name) => Effect.sync(() => Option.fromUndefinedOr(resolveNow(name))),
          resolveNow,
          origins,
          subscribe: (name, listener) =>
            watches.get(name)?.subscribe((instances) => listener(originsOf(instances))) ?? (() => {}),
        })
      }),
    )

  /**
   * The registry the settings name, over the upstreams: `staticUrls` (`<NAME>_URL`) for `static`, the Services for
   * `kubernetes`, the watched instances for `etcd`.
   */
  static readonly layer = (
    settings: RegistrySettings,
    upstreams: ReadonlyArray<Pick<ModuleManifest, "name" | "ports">>,
    staticUrls: Readonly<Record<string, URL>>,
  ) => {
    switch (settings.kind) {
      case "static":
        return ServiceRegistry.layerStatic(staticUrls)
      case "kubernetes":
        return ServiceRegistry.layerKubernetes(settings, upstreams)
      case "etcd":
        return ServiceRegistry.layerEtcd(
          settings,
          upstreams.map((m) => m.name),
        )
    }
  }
}

/** etcd did not answer at start. */
export class EtcdUnavailable extends Schema.TaggedError<EtcdUnavailable>()("EtcdUnavailable", {
  endpoints: Schema.String,
  cause: Schema.optional(Schema.Defect()),
}) {
  override get message() {
    return `etcd at ${this.endpoints} did not answer`
  }
}

// A start does not wait on etcd for ever: past 10 s it fails, naming the endpoints.
const timedOut =
  (endpoints: ReadonlyArray<string>) =>
  <A, R>(effect: Effect.Effect<A, EtcdUnavailable, R>) =>
    Effect.timeoutOrElse(effect, {
      duration: "10 seconds",
      orElse: () => Effect.fail(new EtcdUnavailable({ endpoints: endpoints.join(",") })),
    })

// The process's shared client of these endpoints, released with the scope.
const etcdClient = (endpoints: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => acquireClient(endpoints)),
    (held) => Effect.sync(held.release),
  ).pipe(Effect.flatMap((held) => Effect.promise(() => held.client)))

/** What an instance announces: its function and the ports it listens on. */
export interface Announced {
  readonly name: string
  readonly httpPort: number
  readonly grpcPort?: number | undefined
}

/**
 * With `etcd`, registers this instance once its servers listen (build it after them) under a lease of the TTL, kept
 * alive by the etcd client; its release revokes the lease, so callers stop choosing it before the servers stop
 * accepting. A start fails when etcd does not answer within 10 s. Nothing for the other kinds (the platform around
 * them knows where instances are).
 */
export const announce = (settings: RegistrySettings, instance: Announced): Layer.Layer<never, EtcdUnavailable> => {
  if (settings.kind !== "etcd") return Layer.empty
  return Layer.effectDiscard(
    Effect.gen(function* () {
      const client: Etcd3 = yield* etcdClient(settings.endpoints)
      const id = `${hostname()}-${process.pid}-${randomBytes(4).toString("hex")}`
      const key = `${servicesKey(settings.prefix, instance.name)}${id}`
      const record = {
        http: `http://${hostFor(settings.advertiseHost)}:${instance.httpPort}`,
        ...(instance.grpcPort ? { grpc: `${hostFor(settings.advertiseHost)}:${instance.grpcPort}` } : {}),
        startedAt: new Date().toISOString(),
      }
      const services = yield* Effect.context<never>()
      yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            register(client, key, record, settings.ttlSeconds, (error) =>
              Effect.runForkWith(services)(
                Effect.logWarning("etcd lease lost: registering again", { key, error: String(error) }),
              ),
            ),
          catch: (cause) => new EtcdUnavailable({ endpoints: settings.endpoints.join(","), cause }),
        }).pipe(timedOut(settings.endpoints)),
        (registration) =>
          Effect.promise(() => registration.revoke().catch(() => {})).pipe(
            Effect.andThen(Effect.logInfo("deregistered from etcd", { key })),
          ),
      )
      yield* Effect.logInfo("registered in etcd", { key, ttlSeconds: settings.ttlSeconds, ...record })
    }),
  )
}

// An IPv6 address in a URL or a host:port is bracketed.
const hostFor = (host: string) => (host.includes(":") ? `[${host}]` : host)

/** The registry settings from an environment (tests), as a function reads them at start. */
export const settingsFrom = (env: Record<string, string | undefined>) =>
  config.parse(ConfigProvider.fromEnv({ env: env as Record<string, string> }))
