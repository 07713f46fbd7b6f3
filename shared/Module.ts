import { topicOf } from "./CloudEvent.ts"
import type { Migration } from "./Migrator.ts"

/** A public route a function exposes through the gateway: "public" is open, "user" needs a signed-in caller. */
export interface RouteSpec {
  readonly method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
  /** OpenAPI-style template, e.g. `/api/v1/users/{id}`. */
  readonly path: string
  readonly auth: "public" | "user" | { readonly permission: string }
  /** How long the gateway waits for this route's answer, when not its default (`GATEWAY_TIMEOUT_MS`). */
  readonly timeoutMs?: number
  /** Requests per minute per client address at the gateway, when not its default (0 = unlimited). */
  readonly ipPerMinute?: number
  /** Requests per minute per signed-in user at the gateway, when not its default (0 = unlimited). */
  readonly userPerMinute?: number
  /**
   * The largest request body the route accepts, when not the default (`MAX_BODY_BYTES`), at the gateway and in the
   * function alike (an upload route's files): larger ones get 413.
   */
  readonly maxBodyBytes?: number
}

/** A durable job as the registry shows it: its name and, for a cron job, its UTC schedule and catch-up. */
export interface JobSummary {
  readonly name: string
  readonly schedule?: string
  readonly catchUp?: boolean
}

/** A permission a function defines: `{module}.{resource}.{action}`. */
export interface PermissionSpec {
  readonly name: string
  readonly description: string
}

/** A secret a function's Config.ts reads that every deploy target must provide: its key, whether it must be set, what it is. */
export interface SecretSpec {
  readonly key: string
  readonly required: boolean
  readonly description: string
  /** What a deploy passes while the operator has not set an optional secret (SST's placeholder). */
  readonly placeholder?: string
  /** The function needs it to start even locally (`sst dev`); else a local run uses its development fallback. */
  readonly local?: true
}

/** A plain setting a function's Config.ts reads that the operator provides on every deploy target. */
export interface SettingSpec {
  readonly key: string
  readonly description: string
  /** Makes it optional: what the deploy targets pass while the operator has not set it. */
  readonly default?: string
}

/** Files of an npm package a function serves at run time: copied beside its bundle, into `dir` (scripts/build.ts). */
/** Files of an installed package a function serves (Swagger UI's), copied beside its bundle under `dir`. */
export interface PackageAssets {
  readonly from: string
  readonly dir: string
  readonly files: ReadonlyArray<string>
}

/**
 * A browser application a function serves (the gateway's console): its entry, relative to the repository, bundled by
 * shared/BrowserBundle.ts into `dir` beside the function's bundle.
 */
export interface BrowserAssets {
  readonly browser: string
  readonly dir: string
}

export type AssetSpec = PackageAssets | BrowserAssets

/** Whether an asset declaration is a browser application (else a package's files). */
export const isBrowserAssets = (asset: AssetSpec): asset is BrowserAssets => "browser" in asset

/**
 * A function as the registry knows it: its declaration (`module.ts`) and its routes, derived from the endpoints of its
 * HTTP contract (`Api.ts`, see shared/access/Route.ts) by scripts/registry.ts.
 */
export interface ModuleManifest {
  readonly name: string
  readonly version: string
  readonly description: string
  /** Its ports, each said only here: no two functions share one (`registryProblems`); addresses default to them. */
  readonly ports: { readonly http: number; readonly grpc?: number }
  /**
   * Other functions this one calls; start order and readiness follow it. The edge's upstreams (every function with
   * routes) are not listed: `link` adds them.
   */
  readonly dependsOn: ReadonlyArray<string>
  /** The public edge (the gateway): it routes every other function's routes and sits behind the load balancer. */
  readonly edge?: true
  /** Derived: each endpoint of `Api.ts` with its declaration (`Route.open`, `Route.signedIn`, `Route.requires`). */
  readonly routes: ReadonlyArray<RouteSpec>
  /** Derived: the durable jobs its app definition declares (`App.ts`, `jobs`), by name, with their schedules. */
  readonly jobs?: ReadonlyArray<JobSummary>
  readonly permissions: ReadonlyArray<PermissionSpec>
  /**
   * Event types it publishes (`<name>.entity.action`) and consumes (another function's types, or `*` for every event);
   * the kernel's bus refuses a subscription to a topic `consumes` does not declare (`consumesTopic`).
   */
  readonly events: { readonly publishes: ReadonlyArray<string>; readonly consumes: ReadonlyArray<string> }
  readonly migrations: ReadonlyArray<Migration>
  /**
   * Its own secrets and plain settings, beyond what every function is given (infra/deploy.ts: `SERVICE_KEY`,
   * `REDIS_URL`, `DATABASE_URL` for all but the edge, `KAFKA_BROKERS`, ...); infra/deploy.test.ts checks each is read
   * by its Config.ts.
   */
  readonly secrets?: ReadonlyArray<SecretSpec>
  readonly settings?: ReadonlyArray<SettingSpec>
  /** Package files it serves, which a bundle without node_modules must carry beside it. */
  readonly assets?: ReadonlyArray<AssetSpec>
}

/** What a function's `module.ts` declares: everything but its routes (its HTTP contract) and jobs (its app). */
export type ModuleDeclaration = Omit<ModuleManifest, "routes" | "jobs">

const NAME = /^[a-z][a-z0-9-]*$/
/** A permission string: `{module}.{resource}.{action}` segments (authz's grants use the same rule, plus wildcards). */
export const PERMISSION = /^[a-z0-9]+(\.[a-z0-9]+)*$/
const ENV_KEY = /^[A-Z][A-Z0-9_]*$/
/** What a manifest consumes when it consumes every function's events (audit). */
export const EVERY_EVENT = "*"
// Words of a segment may be joined by "_" (`billing.subscription.past_due`, as API.md names billing's events).
const EVENT_TYPE = /^[a-z0-9]+(?:_[a-z0-9]+)*(\.[a-z0-9]+(?:_[a-z0-9]+)*){2,}$/

/** Checks a declaration and returns it; a broken one fails at import time, before anything starts. */
export const defineModule = <const M extends ModuleDeclaration>(manifest: M): M => {
  const problems = validate({ ...manifest, routes: [] })
  if (problems.length > 0) throw new Error(`module ${manifest.name}: ${problems.join("; ")}`)
  return manifest
}

/** Every problem in a manifest (empty when it is valid). */
export const validate = (m: ModuleManifest): Array<string> => {
  const problems: Array<string> = []
  if (!NAME.test(m.name)) problems.push(`name "${m.name}" must match ${NAME}`)
  const defined = new Set(m.permissions.map((p) => p.name))
  for (const p of m.permissions) {
    if (!PERMISSION.test(p.name)) problems.push(`permission "${p.name}" must match ${PERMISSION}`)
    if (!p.name.startsWith(`${m.name}.`)) problems.push(`permission "${p.name}" must start with "${m.name}."`)
  }
  const seen = new Set<string>()
  for (const r of m.routes) {
    const key = `${r.method} ${r.path}`
    if (seen.has(key)) problems.push(`route ${key} is declared twice`)
    seen.add(key)
    if (!r.path.startsWith("/")) problems.push(`route ${key} must start with /`)
    if (r.timeoutMs !== undefined && !(Number.isInteger(r.timeoutMs) && r.timeoutMs >= 1 && r.timeoutMs <= 600_000)) {
      problems.push(`route ${key}: timeoutMs must be an integer from 1 to 600000`)
    }
    for (const limit of ["ipPerMinute", "userPerMinute"] as const) {
      const value = r[limit]
      if (value !== undefined && !(Number.isInteger(value) && value >= 0)) {
        problems.push(`route ${key}: ${limit} must be a whole number (0 = unlimited)`)
      }
    }
    if (typeof r.auth === "object") {
      const permission = r.auth.permission
      if (!PERMISSION.test(permission)) problems.push(`route ${key} requires a malformed permission "${permission}"`)
      else if (permission.startsWith(`${m.name}.`) && !defined.has(permission)) {
        problems.push(`route ${key} requires ${permission}, which this module does not define`)
      }
    }
  }
  for (const t of [...m.events.publishes, ...m.events.consumes]) {
    if (t !== EVERY_EVENT && !EVENT_TYPE.test(t))
      problems.push(`event type "${t}" must look like service.entity.action`)
  }
  for (const t of m.events.publishes) {
    if (!t.startsWith(`${m.name}.`)) problems.push(`published event type "${t}" must start with "${m.name}."`)
  }
  for (const { key } of [...(m.secrets ?? []), ...(m.settings ?? [])]) {
    if (!ENV_KEY.test(key)) problems.push(`setting "${key}" must be an environment key (${ENV_KEY})`)
  }
  const ids = m.migrations.map((x) => x.id)
  if (new Set(ids).size !== ids.length) problems.push("migration ids must be unique")
  return problems
}

/** The functions an edge routes to: every other function with public routes. */
export const upstreamsOf = <M extends Pick<ModuleManifest, "name" | "routes">>(
  edge: Pick<ModuleManifest, "name">,
  manifests: ReadonlyArray<M>,
): Array<M> => manifests.filter((m) => m.name !== edge.name && m.routes.length > 0)

/**
 * The registry's manifests with what is derived filled in: an edge depends on its upstreams too, so start order,
 * peer addresses and callers follow the routes without a `dependsOn` edit when a function is added.
 */
export const link = <M extends ModuleManifest>(manifests: ReadonlyArray<M>): ReadonlyArray<M> =>
  manifests.map((m) =>
    m.edge ? { ...m, dependsOn: [...new Set([...m.dependsOn, ...upstreamsOf(m, manifests).map((u) => u.name)])] } : m,
  )

/**
 * Every problem of the registry (empty when its manifests are valid and fit together): a name or a port used twice
 * (HTTP and gRPC share one space), a dependency on an unknown function, a consumed event nobody publishes, a route
 * requiring a permission no function defines, more than one edge.
 */
export const registryProblems = (manifests: ReadonlyArray<ModuleManifest>): Array<string> => {
  const problems: Array<string> = manifests.flatMap((m) => validate(m).map((p) => `${m.name}: ${p}`))
  const names = new Set<string>()
  const ports = new Map<number, string>()
  for (const m of manifests) {
    if (names.has(m.name)) problems.push(`function ${m.name} is declared twice`)
    names.add(m.name)
    for (const [kind, port] of Object.entries(m.ports)) {
      if (port === undefined) continue
      const owner = ports.get(port)
      if (owner !== undefined) problems.push(`port ${port} (${m.name} ${kind}) is already ${owner}'s`)
      else ports.set(port, `${m.name} ${kind}`)
    }
  }
  for (const m of manifests) {
    for (const dep of m.dependsOn) if (!names.has(dep)) problems.push(`${m.name} depends on unknown function ${dep}`)
  }
  const published = new Set(manifests.flatMap((m) => m.events.publishes))
  for (const m of manifests) {
    for (const t of m.events.consumes) {
      if (t !== EVERY_EVENT && !published.has(t)) problems.push(`${m.name} consumes ${t}, which no function publishes`)
    }
  }
  const defined = new Set(manifests.flatMap((m) => m.permissions.map((p) => p.name)))
  for (const m of manifests) {
    for (const r of m.routes) {
      if (typeof r.auth === "object" && !defined.has(r.auth.permission)) {
        problems.push(`${m.name}: ${r.method} ${r.path} requires ${r.auth.permission}, which no function defines`)
      }
    }
  }
  const edges = manifests.filter((m) => m.edge).map((m) => m.name)
  if (edges.length > 1) problems.push(`more than one edge: ${edges.join(", ")}`)
  return problems
}

/**
 * The registry (the generated list of every function's manifest): checked together (`registryProblems`; a clash
 * fails at import time, before anything starts) and linked (`link`).
 */
export const defineRegistry = <M extends ModuleManifest>(manifests: ReadonlyArray<M>): ReadonlyArray<M> => {
  const problems = registryProblems(manifests)
  if (problems.length > 0) throw new Error(`the registry: ${problems.join("; ")}`)
  return link(manifests)
}

/**
 * Whether a manifest declares consuming events of `topic` (a producer's `<service>.events`): one of its consumed types
 * is that producer's (`<service>.…`), or it consumes every event.
 */
export const consumesTopic = (m: Pick<ModuleManifest, "events">, topic: string): boolean =>
  m.events.consumes.some((t) => t === EVERY_EVENT || topicOf(t.slice(0, t.indexOf("."))) === topic)

/** Every producer's topic: those of the functions that publish events (what a consumer of every event reads). */
export const producerTopics = (manifests: ReadonlyArray<Pick<ModuleManifest, "name" | "events">>) =>
  manifests.filter((m) => m.events.publishes.length > 0).map((m) => topicOf(m.name))

/** The environment key prefix of a function: `identity` → `IDENTITY`, `user-prefs` → `USER_PREFS`. */
const envKey = (name: string) => name.toUpperCase().replaceAll("-", "_")

/** Where a function's HTTP API is found: `<NAME>_URL` (the gateway's upstreams). */
export const httpUrlKey = (name: string) => `${envKey(name)}_URL`

/** Where a function's gRPC server is found: `<NAME>_GRPC_URL` (its callers). */
export const grpcUrlKey = (name: string) => `${envKey(name)}_GRPC_URL`

/**
 * Manifests in start order: every function after the functions it depends on (npm start, the test platform and the
 * deployments wire them in this order). An unknown dependency or a cycle is an error naming it.
 */
export const startOrder = <M extends Pick<ModuleManifest, "name" | "dependsOn">>(manifests: ReadonlyArray<M>) => {
  const ordered: Array<M> = []
  const visit = (m: M, path: ReadonlyArray<string>) => {
    if (ordered.includes(m)) return
    if (path.includes(m.name)) throw new Error(`dependency cycle: ${[...path, m.name].join(" -> ")}`)
    for (const dep of m.dependsOn) {
      const d = manifests.find((other) => other.name === dep)
      if (!d) throw new Error(`${m.name} depends on unknown function ${dep}`)
      visit(d, [...path, m.name])
    }
    ordered.push(m)
  }
  for (const m of manifests) visit(m, [])
  return ordered
}

/**
 * An address every function but its server is given (e.g. where the token issuer's keys are, `AUTH_JWKS_URL`): the
 * key, the function serving it on its HTTP port, and the path. The serving function declares it.
 */
export interface CommonAddress {
  readonly key: string
  readonly dependency: string
  readonly path: string
}

/**
 * What a deployed function is told about the others: `<DEP>_URL` (HTTP, `http://host:port`) and, when the dependency
 * serves gRPC, `<DEP>_GRPC_URL` (`host:port`) for each function it depends on, and each of `common` (auth's keys) when
 * another function serves it; the caller names the host (a Kubernetes service, an ECS service, localhost).
 */
export const peerAddresses = (
  m: Pick<ModuleManifest, "name" | "dependsOn">,
  all: ReadonlyArray<Pick<ModuleManifest, "name" | "ports">>,
  common: ReadonlyArray<CommonAddress>,
): Array<PeerAddress> => {
  const peers = m.dependsOn.flatMap((dep): Array<PeerAddress> => {
    const peer = all.find((other) => other.name === dep)
    if (!peer) return []
    return [
      { key: httpUrlKey(dep), dependency: dep, port: peer.ports.http, http: true, path: "" },
      ...(peer.ports.grpc
        ? [{ key: grpcUrlKey(dep), dependency: dep, port: peer.ports.grpc, http: false, path: "" }]
        : []),
    ]
  })
  const shared = common.flatMap((address): Array<PeerAddress> => {
    const server = all.find((other) => other.name === address.dependency)
    if (server === undefined || m.name === address.dependency) return []
    return [{ ...address, port: server.ports.http, http: true }]
  })
  return [...peers, ...shared]
}

/** One address a deployed function is given (see `peerAddresses`); its value is `[http://]host:port path`. */
export interface PeerAddress {
  readonly key: string
  readonly dependency: string
  readonly port: number
  readonly http: boolean
  readonly path: string
}
