// The functions' part of the Docker Compose stack, derived from infra/deploy.ts (`plan()`: ports, peers, secrets,
// settings of every function in the registry), like scripts/k8s.ts and sst.config.ts. Two commands:
//   node scripts/compose.ts [--out infra/docker-compose.functions.yml]
//     renders the services (profile `functions`) that infra/docker-compose.yml includes; infra/compose.test.ts fails
//     while the committed file differs from this render.
//   node scripts/compose.ts secrets [--dir infra/compose.secrets]
//     writes each function's env file there (its service key, SERVICE_PUBLIC_KEYS, auth's KEY_ENCRYPTION_KEY) once:
//     an existing file is kept. The directory is ignored by git (its own .gitignore).
// See infra/README.md, "Every function in Docker".
import { generateKeyPairSync, randomBytes } from "node:crypto"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join, relative } from "node:path"
import { parseArgs } from "node:util"
import { type FunctionPlan, functionSettings, plainSettings, plan } from "../infra/deploy.ts"
import { privateKeyText, publicKeyText } from "../shared/ServiceIdentity.ts"
import { yamlFile } from "./k8s.ts"

export const PROFILE = "functions"
export const COMPOSE_FILE = "infra/docker-compose.functions.yml"
export const SECRETS_DIR = "infra/compose.secrets"

/** The functions' env files, relative to the compose file's directory (compose resolves them from there). */
export const envFile = (fn: string) => `${relative("infra", SECRETS_DIR)}/${fn}.env`

/** The infrastructure services of infra/docker-compose.yml, by their names on the compose network. */
const infra = {
  postgres: "postgres",
  redis: "redis",
  kafka: "redpanda",
  s3: "localstack",
} as const

/** The bucket LocalStack's init script creates (localstack/init/ready.d/10-buckets.sh, infra/lib.sh's S3_BUCKET). */
export const S3_BUCKET = "platform-test"

/**
 * Secrets with a value on the compose network (the stores' addresses: trust auth, no passwords), set in the service;
 * the other required ones come from the function's env file (`generated`) or, in development, are left to their
 * development fallback (SMTP_URL: the dev mailbox, read through the gateway's /_dev/mail).
 */
const storeSecrets: Readonly<Record<string, { readonly service: string; readonly value: string }>> = {
  DATABASE_URL: { service: infra.postgres, value: `postgres://postgres@${infra.postgres}:5432/platform` },
  REDIS_URL: { service: infra.redis, value: `redis://${infra.redis}:6379` },
}

/** Secrets generated into the env files, by key: a fresh value each. */
const generated: Readonly<Record<string, () => string>> = {
  // Seals auth's signing keys; `local`: required in development too.
  KEY_ENCRYPTION_KEY: () => randomBytes(32).toString("base64"),
}

/**
 * The docker network's addresses, trusted for X-Forwarded-For: the gateway forwards from there (and the host's
 * requests arrive from the bridge's gateway address). Docker's default address pools, since compose picks the subnet.
 */
export const TRUSTED_PROXIES = "172.16.0.0/12,192.168.0.0/16"

const HEALTHCHECK = ["CMD", "/nodejs/bin/node", "/app/healthcheck.mjs"]

/** A peer's address on the compose network: its service name. */
const peerValue = (peer: FunctionPlan["peers"][number]) =>
  peer.http ? `http://${peer.dependency}:${peer.port}${peer.path}` : `${peer.dependency}:${peer.port}`

/** The values of the plain settings (infra/deploy.ts) on this stack; a new setting without one fails the render. */
const settingValue = (key: string, gateway: FunctionPlan): string | undefined => {
  switch (key) {
    case "KAFKA_BROKERS":
      return `${infra.kafka}:9092`
    case "TRUSTED_PROXIES":
      return TRUSTED_PROXIES
    // Links in mails and the feed: the gateway as published on the host.
    case "APP_BASE_URL":
      return `http://localhost:${gateway.ports.http}`
    case "S3_BUCKET":
      return S3_BUCKET
    default:
      return undefined
  }
}

/** Plain settings from the env file, generated with the service keys. */
const fromEnvFile = new Set(["SERVICE_PUBLIC_KEYS"])

/** The environment of one function's service (everything but what its env file holds). */
const environment = (p: FunctionPlan, gateway: FunctionPlan): Record<string, string> => {
  const settings = [...plainSettings, ...(functionSettings[p.name] ?? [])].flatMap(
    (s: { key: string; default?: string }): Array<[string, string]> => {
      if (fromEnvFile.has(s.key)) return []
      const value = settingValue(s.key, gateway) ?? s.default
      if (value === undefined) throw new Error(`scripts/compose.ts: no value for the setting ${s.key} of ${p.name}`)
      return [[s.key, value]]
    },
  )
  const stores = p.secrets.flatMap((s): Array<[string, string]> => {
    const store = storeSecrets[s.key]
    return store === undefined ? [] : [[s.key, store.value]]
  })
  const s3 = settings.some(([key]) => key === "S3_BUCKET")
  return {
    // Development, like `sst dev`: mail goes to the dev mailbox and links point at localhost (production refuses both).
    NODE_ENV: "development",
    HTTP_PORT: String(p.ports.http),
    ...(p.ports.grpc ? { GRPC_PORT: String(p.ports.grpc) } : {}),
    ...Object.fromEntries(p.peers.map((peer) => [peer.key, peerValue(peer)])),
    ...Object.fromEntries(stores),
    ...Object.fromEntries(settings),
    // LocalStack's S3 for the functions that store files: any credentials.
    ...(s3
      ? {
          S3_ENDPOINT: `http://${infra.s3}:4566`,
          S3_REGION: "us-east-1",
          AWS_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
        }
      : {}),
  }
}

/** The services a function waits for (healthy): the stores it is given, then the functions it calls. */
export const dependencies = (p: FunctionPlan, env: Record<string, string>): Array<string> => [
  ...Object.entries(storeSecrets)
    .filter(([key]) => key in env)
    .map(([, store]) => store.service),
  ...("KAFKA_BROKERS" in env ? [infra.kafka] : []),
  ...("S3_ENDPOINT" in env ? [infra.s3] : []),
  // `dependsOn` only: every function also reads auth's JWKS, but fetches it when a token comes (and auth calls
  // identity, which would make a cycle).
  ...p.manifest.dependsOn,
]

/** The image's user (infra/Dockerfile: distroless `nonroot`). */
const USER = "65532:65532"

const service = (p: FunctionPlan, gateway: FunctionPlan) => {
  const env = environment(p, gateway)
  return {
    image: `platform/${p.name}:local`,
    build: { context: "..", dockerfile: "infra/Dockerfile", args: { FUNCTION: p.name } },
    profiles: [PROFILE],
    user: USER,
    read_only: true,
    // Node and libraries may want a scratch directory; the root filesystem is read-only.
    tmpfs: ["/tmp"],
    cap_drop: ["ALL"],
    security_opt: ["no-new-privileges:true"],
    env_file: [{ path: envFile(p.name), required: true }],
    environment: env,
    // The public function only, on the host's loopback like the stores; the others are on the compose network only.
    ...(p.public ? { ports: [`127.0.0.1:${p.ports.http}:${p.ports.http}`] } : {}),
    depends_on: Object.fromEntries(dependencies(p, env).map((name) => [name, { condition: "service_healthy" }])),
    // The image's own check (its HEALTHCHECK: /healthz on HTTP_PORT), more often while starting.
    healthcheck: { test: HEALTHCHECK, interval: "5s", timeout: "3s", retries: 3, start_period: "30s" },
    // SIGTERM drains HTTP then gRPC (SHUTDOWN_TIMEOUT_MS each, 10 s by default).
    stop_grace_period: "30s",
  }
}

/** The compose file of every function in the plan. */
export const render = (plans: ReadonlyArray<FunctionPlan> = plan()): string => {
  const gateway = plans.find((p) => p.public)
  if (gateway === undefined) throw new Error("infra/deploy.ts: no public function (the gateway)")
  return yamlFile(
    [
      "Generated by scripts/compose.ts from infra/deploy.ts (`npm run compose:render`): do not edit.",
      "Every function from its image, profile `functions`; infra/docker-compose.yml includes this file.",
      `Secrets: ${SECRETS_DIR}/<function>.env, written once by \`node scripts/compose.ts secrets\`.`,
      "  docker compose -f infra/docker-compose.yml --profile functions up --build",
    ],
    [{ services: Object.fromEntries(plans.map((p) => [p.name, service(p, gateway)])) }],
  )
}

/** Each function's env file: its own service key, every public key, its generated secrets. */
export const secretsFiles = (plans: ReadonlyArray<FunctionPlan> = plan()): Map<string, string> => {
  const keys = new Map(plans.map((p) => [p.name, generateKeyPairSync("ed25519")]))
  const publicKeys = JSON.stringify(
    Object.fromEntries([...keys].map(([name, pair]) => [name, publicKeyText(pair.publicKey)])),
  )
  const files = new Map<string, string>()
  for (const p of plans) {
    const own = p.secrets.flatMap((s) => {
      if (s.key === "SERVICE_KEY" || storeSecrets[s.key] !== undefined || !s.required || !s.local) return []
      const make = generated[s.key]
      if (make === undefined) throw new Error(`scripts/compose.ts: no generator for the secret ${s.key} of ${p.name}`)
      return [`# ${s.description}`, `${s.key}=${make()}`]
    })
    files.set(
      `${p.name}.env`,
      [
        `# ${p.name}'s secrets on the compose stack (scripts/compose.ts secrets): never commit. Add optional ones`,
        "# (SENTRY_DSN, OIDC_PROVIDERS, ...) as KEY=value lines.",
        `SERVICE_KEY=${privateKeyText(keys.get(p.name)!.privateKey)}`,
        `SERVICE_PUBLIC_KEYS=${publicKeys}`,
        ...own,
        "",
      ].join("\n"),
    )
  }
  return files
}

/** Writes the env files that do not exist yet into `dir`; returns the names written. */
export const writeSecrets = (dir: string, plans: ReadonlyArray<FunctionPlan> = plan()): Array<string> => {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  writeFileSync(join(dir, ".gitignore"), "# Generated secrets (scripts/compose.ts secrets): never commit them.\n*\n")
  const files = secretsFiles(plans)
  // One key set: keep every file or none, else the public keys of the kept ones and the new ones would differ.
  if ([...files.keys()].some((name) => existsSync(join(dir, name)))) {
    const missing = [...files.keys()].filter((name) => !existsSync(join(dir, name)))
    if (missing.length > 0)
      throw new Error(`${dir} holds some env files but not ${missing.join(", ")}: remove the directory to start over`)
    return []
  }
  for (const [name, text] of files) writeFileSync(join(dir, name), text, { mode: 0o600 })
  return [...files.keys()]
}

if (import.meta.main) {
  const usage = "usage: node scripts/compose.ts [--out FILE] | node scripts/compose.ts secrets [--dir DIR]\n"
  let parsed: { values: { out: string; dir: string }; positionals: Array<string> }
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: { out: { type: "string", default: COMPOSE_FILE }, dir: { type: "string", default: SECRETS_DIR } },
      allowPositionals: true,
    })
  } catch (error) {
    process.stderr.write(`compose: ${error instanceof Error ? error.message : String(error)}\n${usage}`)
    process.exit(2)
  }
  const { values, positionals } = parsed
  if (positionals.length === 0) {
    writeFileSync(values.out, render())
    process.stderr.write(`compose: wrote ${values.out}\n`)
  } else if (positionals.length === 1 && positionals[0] === "secrets") {
    const written = writeSecrets(values.dir)
    process.stderr.write(
      written.length > 0
        ? `compose: wrote ${written.length} env files to ${values.dir}\n`
        : `compose: kept ${values.dir}\n`,
    )
  } else {
    process.stderr.write(usage)
    process.exit(2)
  }
}
