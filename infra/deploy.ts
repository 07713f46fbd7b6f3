// What every deploy target (Kubernetes, SST/ECS) gives each function, derived from the registry: its ports, where it
// finds the functions it depends on, who may call it, its secrets and its plain settings. The targets only say how
// (a Kubernetes Secret, an SST secret) and where (a Service name, an ECS service-discovery name).
import { jwksAddress } from "../functions/auth/TokenVerification.ts"
import { manifests as registry } from "../functions/registry.ts"
import {
  type ModuleManifest,
  type PeerAddress,
  peerAddresses,
  type SecretSpec,
  type SettingSpec,
} from "../shared/Module.ts"
import { callersOf } from "../shared/ServiceIdentity.ts"

/** A secret a function needs: its environment key, whether it must be set, and what it is. */
export type { SecretSpec }

/** How one function is deployed. */
export interface FunctionPlan {
  readonly name: string
  readonly manifest: ModuleManifest
  readonly ports: { readonly http: number; readonly grpc?: number }
  /** `<DEP>_URL`, `<DEP>_GRPC_URL`, `AUTH_JWKS_URL`: the target fills in the host. */
  readonly peers: ReadonlyArray<PeerAddress>
  /** The functions allowed to call it (their manifests list it in `dependsOn`): network policy and service identity. */
  readonly callers: ReadonlyArray<string>
  /** Secrets this function (and only this function) is given. */
  readonly secrets: ReadonlyArray<SecretSpec>
  /** Whether it is the public edge (its manifest's `edge`: load balancer / Ingress in front). */
  readonly public: boolean
}

/**
 * Each function's V8 heap bounds, the one place they are declared: the image sets them (infra/Dockerfile's
 * NODE_HEAP_OPTIONS, checked against this by infra/deploy.test.ts), so Kubernetes and SST/ECS, which run that image,
 * have them; `npm start --processes` and the gateway bench give them to each function process.
 * - The young generation (two semi-spaces) is what V8 grows first under load: left to itself it reaches 2 × 64 MiB
 *   on a large host, and keeps it; 8 MiB semi-spaces hold the in-flight requests of a busy function.
 * - The old space is capped well under the containers' 512 MiB limit (scripts/k8s.ts; SST's default task memory),
 *   so a runaway heap ends as a V8 out-of-memory exit (restarted) rather than the kernel's kill of a container.
 * The trade-off (RSS against GC time, measured by `npm run bench:gateway`) is in README.md, "Memory".
 */
export const functionHeap = { maxSemiSpaceMiB: 8, maxOldSpaceMiB: 256 } as const

/** `functionHeap` as Node options (NODE_OPTIONS). */
export const functionHeapOptions = `--max-semi-space-size=${functionHeap.maxSemiSpaceMiB} --max-old-space-size=${functionHeap.maxOldSpaceMiB}`

/** Secrets every function gets. */
const common: ReadonlyArray<SecretSpec> = [
  {
    key: "SERVICE_KEY",
    required: true,
    description: "the function's own Ed25519 service key (`npm run keys:generate`)",
  },
  { key: "REDIS_URL", required: true, description: "Redis (`rediss://:token@host:6379` with TLS and auth)" },
  {
    key: "SENTRY_DSN",
    required: false,
    placeholder: "",
    description: "a Sentry or GlitchTip DSN the function reports its defects to (docs/errors.md); empty: none",
  },
]

/** Secrets of functions that own data (all but the edge): their Postgres. */
const database: SecretSpec = {
  key: "DATABASE_URL",
  required: true,
  description:
    "Postgres (`postgres://user:password@host:5432/db`, with `?sslmode=no-verify` for TLS without a CA bundle); each function uses its own schema",
}

/** Secrets only some functions read, as their manifests declare them (`secrets`), by function. */
export const functionSecrets: Readonly<Record<string, ReadonlyArray<SecretSpec>>> = Object.fromEntries(
  registry.flatMap((m) => (m.secrets === undefined ? [] : [[m.name, m.secrets]])),
)

/**
 * Plain settings every function is given by the deploy target (values the operator provides); one with a `default`
 * is optional: the targets pass the default while the operator has not set it.
 */
export const plainSettings = [
  { key: "KAFKA_BROKERS", description: "comma-separated Kafka brokers (`host:9092,...`)" },
  {
    key: "KAFKA_TOPIC_PREFIX",
    description:
      "put before every Kafka topic and consumer group name (`staging.`), so that environments can share a cluster; empty for none",
    default: "",
  },
  {
    key: "SERVICE_PUBLIC_KEYS",
    description: "JSON map of every function's public service key (`npm run keys:generate`)",
  },
  { key: "TRUSTED_PROXIES", description: "the gateway's and load balancers' addresses or CIDR ranges" },
] as const

/** Plain settings only some functions read, as their manifests declare them (`settings`), by function. */
export const functionSettings: Readonly<Record<string, ReadonlyArray<SettingSpec>>> = Object.fromEntries(
  registry.flatMap((m) => (m.settings === undefined ? [] : [[m.name, m.settings]])),
)

/** The deploy plan of every function in the registry, dependencies first. */
export const plan = (manifests: ReadonlyArray<ModuleManifest> = registry): Array<FunctionPlan> =>
  manifests.map((m) => ({
    name: m.name,
    manifest: m,
    ports: m.ports,
    peers: peerAddresses(m, manifests, [jwksAddress]),
    callers: callersOf(m.name, manifests),
    secrets: [...common, ...(m.edge ? [] : [database]), ...(m.secrets ?? [])],
    public: m.edge === true,
  }))
