// What every deploy target (Kubernetes, SST/ECS) gives each function, derived from the registry: its ports, where it
// finds the functions it depends on, who may call it, its secrets and its plain settings. The targets only say how
// (a Kubernetes Secret, an SST secret) and where (a Service name, an ECS service-discovery name).
import { manifests as registry } from "../functions/registry.ts"
import { type ModuleManifest, type PeerAddress, peerAddresses } from "../shared/Module.ts"
import { callersOf } from "../shared/ServiceIdentity.ts"

/** A secret a function needs: its environment key, whether it must be set, and what it is. */
export interface SecretSpec {
  readonly key: string
  readonly required: boolean
  readonly description: string
}

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

/** Secrets every function gets. */
const common: ReadonlyArray<SecretSpec> = [
  {
    key: "SERVICE_KEY",
    required: true,
    description: "the function's own Ed25519 service key (`npm run keys:generate`)",
  },
  { key: "REDIS_URL", required: true, description: "Redis (`rediss://:token@host:6379` with TLS and auth)" },
]

/** Secrets of functions that own data (all but the gateway): their Postgres. */
const database: SecretSpec = {
  key: "DATABASE_URL",
  required: true,
  description:
    "Postgres (`postgres://user:password@host:5432/db`, with `?sslmode=no-verify` for TLS without a CA bundle); each function uses its own schema",
}

/**
 * Secrets only some functions read (each key is checked against that function's Config.ts by infra/deploy.test.ts, so
 * this table cannot drift from the code).
 */
export const functionSecrets: Readonly<Record<string, ReadonlyArray<SecretSpec>>> = {
  auth: [
    { key: "KEY_ENCRYPTION_KEY", required: true, description: "32 random bytes, base64: seals auth's signing keys" },
    { key: "OIDC_PROVIDERS", required: false, description: "JSON array of OpenID Providers (holds client secrets)" },
  ],
  identity: [{ key: "SMTP_URL", required: true, description: "SMTP server for mail (`smtps://user:pass@host:465`)" }],
}

/** Plain settings every function is given by the deploy target (values the operator provides). */
export const plainSettings = [
  { key: "KAFKA_BROKERS", description: "comma-separated Kafka brokers (`host:9092,...`)" },
  {
    key: "SERVICE_PUBLIC_KEYS",
    description: "JSON map of every function's public service key (`npm run keys:generate`)",
  },
  { key: "TRUSTED_PROXIES", description: "the gateway's and load balancers' addresses or CIDR ranges" },
] as const

/** Plain settings only some functions read. */
export const functionSettings: Readonly<Record<string, ReadonlyArray<{ key: string; description: string }>>> = {
  identity: [{ key: "APP_BASE_URL", description: "the public URL of the platform (links in mails)" }],
}

/** The deploy plan of every function in the registry, dependencies first. */
export const plan = (manifests: ReadonlyArray<ModuleManifest> = registry): Array<FunctionPlan> =>
  manifests.map((m) => ({
    name: m.name,
    manifest: m,
    ports: m.ports,
    peers: peerAddresses(m, manifests),
    callers: callersOf(m.name, manifests),
    secrets: [...common, ...(m.name === "gateway" ? [] : [database]), ...(functionSecrets[m.name] ?? [])],
    public: m.edge === true,
  }))
