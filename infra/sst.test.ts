// Evaluates sst.config.ts without SST (whose CLI downloads Pulumi at first run): its `app()` and `run()` with global
// stand-ins for what SST provides ($config, $app, $dev, $interpolate, $util, sst.*, aws.*). Each stand-in component
// records its name and arguments and exposes the outputs the config reads as plain values; the assertions hold the
// recorded arguments against infra/deploy.ts (`plan()`), the single source of what each function gets.
import { readFileSync } from "node:fs"
import { beforeAll, describe, expect, it } from "vitest"
import { entryProblem } from "../shared/TrustedProxies.ts"
import { type FunctionPlan, functionSettings, plainSettings, plan } from "./deploy.ts"

const APP = "platform"
// What SST v4's components hold (platform/src/components/aws/vpc.ts): the VPC's CIDR and its Cloud Map namespace.
const VPC_CIDR = "10.0.0.0/16"
const NAMESPACE = "sst"
// The outputs of the database and the cache; the Redis auth token uses SST's alphabet (`!&#$^<>-`).
const PG = { host: "pg.abc.eu-west-1.rds.amazonaws.com", port: 5432, username: "postgres", password: "pgPassw0rd" }
const REDIS = { host: "master.redis.abc.euw1.cache.amazonaws.com", port: 6379, password: "t0k#en&^$<>-!x" }

interface Made {
  readonly type: string
  readonly name: string
  readonly args: any
  readonly instance: any
}

let made: Array<Made> = []

/** A recording stand-in for a component class; `outputs` are the properties the config may read. */
const component = (type: string, outputs: (name: string, args: any) => Record<string, unknown> = () => ({})) =>
  class {
    constructor(name: string, args?: unknown) {
      Object.assign(this, outputs(name, args))
      made.push({ type, name, args, instance: this })
    }
  }

const g = globalThis as any

/** Installs the globals SST gives sst.config.ts. */
const install = (stage: string, dev: boolean) =>
  Object.assign(g, {
    $config: (config: unknown) => config,
    $app: { name: APP, stage },
    $dev: dev,
    $interpolate: (strings: TemplateStringsArray, ...values: Array<unknown>) =>
      strings.reduce((text, part, i) => text + part + (i < values.length ? String(values[i]) : ""), ""),
    $util: { output: (value: unknown) => ({ apply: (f: (value: unknown) => unknown) => f(value) }) },
    sst: {
      Secret: component("sst.Secret", (name, placeholder) => ({ name, placeholder, value: `<secret ${name}>` })),
      aws: {
        Vpc: component("sst.aws.Vpc", () => ({
          nodes: { vpc: { cidrBlock: VPC_CIDR }, cloudmapNamespace: { name: NAMESPACE } },
        })),
        Cluster: component("sst.aws.Cluster"),
        Postgres: component("sst.aws.Postgres", () => ({ ...PG, database: APP })),
        Redis: component("sst.aws.Redis", () => ({ ...REDIS, username: "default" })),
        Bucket: component("sst.aws.Bucket", (name) => ({
          name: `${name}-bucket-name`,
          nodes: { bucket: { bucketRegionalDomainName: `${name}-bucket-name.s3.eu-west-1.amazonaws.com` } },
        })),
        // `service` as SST's Service computes it: `<name>.<stage>.<app>.<namespace>` (`dev.<namespace>` in dev).
        Service: component("sst.aws.Service", (name) => ({
          url: `http://${name}-lb-123.eu-west-1.elb.amazonaws.com`,
          service: g.$dev ? `dev.${NAMESPACE}` : `${name}.${g.$app.stage}.${APP}.${NAMESPACE}`,
        })),
      },
    },
    aws: {
      ssm: { Parameter: component("aws.ssm.Parameter", (name) => ({ arn: `arn:aws:ssm:::parameter/${name}` })) },
    },
  })

let config: { app(input: { stage: string }): any; run(): Promise<any> }

/** One evaluation of `run()`: everything it made, and what it returned. */
const evaluate = async (options: { stage?: string; dev?: boolean; domain?: string } = {}) => {
  install(options.stage ?? "production", options.dev ?? false)
  if (options.domain === undefined) delete process.env.PLATFORM_DOMAIN
  else process.env.PLATFORM_DOMAIN = options.domain
  made = []
  try {
    const output = await config.run()
    return { made, output }
  } finally {
    delete process.env.PLATFORM_DOMAIN
  }
}

const ofType = (all: ReadonlyArray<Made>, type: string) => all.filter((m) => m.type === type)
const servicesOf = (all: ReadonlyArray<Made>) => new Map(ofType(all, "sst.aws.Service").map((m) => [m.name, m]))
const pascal = (name: string) =>
  name
    .toLowerCase()
    .split(/[-_]/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("")

const functions = plan()
const byName = new Map(functions.map((fn) => [fn.name, fn]))
const secretKeys = ["DATABASE_URL", "REDIS_URL", "KEY_ENCRYPTION_KEY", "SMTP_URL", "SERVICE_KEY", "OIDC_PROVIDERS"]

beforeAll(async () => {
  install("production", false)
  // Not a literal specifier: tsc would type-check sst.config.ts, whose types (.sst/platform) only `sst` generates.
  const url = new URL("../sst.config.ts", import.meta.url).href
  config = (await import(url)).default
})

describe("sst.config.ts app()", () => {
  it("keeps and protects production only", () => {
    expect(config.app({ stage: "production" })).toEqual({
      name: APP,
      home: "aws",
      removal: "retain",
      protect: true,
    })
    expect(config.app({ stage: "alice" })).toMatchObject({ removal: "remove", protect: false })
  })
})

describe("sst.config.ts run() (deploy)", () => {
  const load = () => evaluate()

  it("makes one ECS service per function of plan(), each image built with FUNCTION as its only build argument", async () => {
    const { made } = await load()
    const services = servicesOf(made)
    expect([...services.keys()].sort()).toEqual(functions.map((fn) => fn.name).sort())
    for (const fn of functions) {
      const { image, cluster } = services.get(fn.name)!.args
      expect(image).toStrictEqual({ context: ".", dockerfile: "infra/Dockerfile", args: { FUNCTION: fn.name } })
      expect(cluster).toBe(ofType(made, "sst.aws.Cluster")[0]!.instance)
    }
  })

  it("sets HTTP_PORT and GRPC_PORT from the manifest, GRPC_PORT only when the function serves gRPC", async () => {
    const services = servicesOf((await load()).made)
    for (const fn of functions) {
      const env = services.get(fn.name)!.args.environment
      expect(env.HTTP_PORT, fn.name).toBe(String(fn.manifest.ports.http))
      if (fn.manifest.ports.grpc === undefined) expect(Object.keys(env), fn.name).not.toContain("GRPC_PORT")
      else expect(env.GRPC_PORT, fn.name).toBe(String(fn.manifest.ports.grpc))
    }
    expect(byName.get("gateway")!.manifest.ports.grpc).toBeUndefined()
    expect(Object.keys(services.get("gateway")!.args.environment)).not.toContain("GRPC_PORT")
  })

  it("health-checks each container with the absolute node path, exec form, on its HTTP port", async () => {
    const services = servicesOf((await load()).made)
    for (const fn of functions) {
      const { command } = services.get(fn.name)!.args.health
      expect(command.slice(0, 2)).toEqual(["CMD", "/nodejs/bin/node"])
      expect(command).toEqual([
        "CMD",
        "/nodejs/bin/node",
        "-e",
        `fetch('http://127.0.0.1:${fn.ports.http}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`,
      ])
    }
  })

  it("puts only the public function (the gateway) behind the load balancer, health-checked on a real path", async () => {
    const services = servicesOf((await load()).made)
    for (const fn of functions) {
      const { loadBalancer } = services.get(fn.name)!.args
      if (!fn.public) {
        expect(loadBalancer, fn.name).toBeUndefined()
        continue
      }
      expect(loadBalancer.rules).toEqual([{ listen: "80/http", forward: `${fn.ports.http}/http` }])
      const health = loadBalancer.health[`${fn.ports.http}/http`]
      expect(health.path).not.toBe("/")
      expect(["/healthz", "/readyz"]).toContain(health.path)
    }
    expect(functions.filter((fn) => fn.public).map((fn) => fn.name)).toEqual(["gateway"])
  })

  it("gives every peer address of plan() at the dependency's service-discovery name and manifest port", async () => {
    const services = servicesOf((await load()).made)
    for (const fn of functions) {
      const env = services.get(fn.name)!.args.environment
      expect(fn.peers.length, fn.name).toBeGreaterThan(0)
      for (const peer of fn.peers) {
        const dependency = byName.get(peer.dependency)!
        const port = peer.key.endsWith("_GRPC_URL") ? dependency.manifest.ports.grpc : dependency.manifest.ports.http
        expect(peer.port).toBe(port)
        const host = services.get(peer.dependency)!.instance.service
        expect(host).toBe(`${peer.dependency}.production.${APP}.${NAMESPACE}`)
        expect(env[peer.key], `${fn.name} ${peer.key}`).toBe(`${peer.http ? "http://" : ""}${host}:${port}${peer.path}`)
      }
    }
  })

  it("tells every function but auth where auth's keys are, identity included", async () => {
    const services = servicesOf((await load()).made)
    const jwks = `http://auth.production.${APP}.${NAMESPACE}:${byName.get("auth")!.ports.http}/.well-known/jwks.json`
    for (const fn of functions) {
      const env = services.get(fn.name)!.args.environment
      if (fn.name === "auth") expect(Object.keys(env)).not.toContain("AUTH_JWKS_URL")
      else expect(env.AUTH_JWKS_URL, fn.name).toBe(jwks)
    }
    expect(services.get("identity")!.args.environment.AUTH_JWKS_URL).toBe(jwks)
  })

  it("passes each function exactly its secrets of plan() as ECS secrets (SSM SecureString), none in plain environment", async () => {
    const { made } = await load()
    const services = servicesOf(made)
    const parameters = new Map(ofType(made, "aws.ssm.Parameter").map((m) => [m.instance.arn, m]))
    const secretValues = [
      ...ofType(made, "sst.Secret")
        // The plain settings' values, kept as SST secrets (per stage) but not secret.
        .filter((m) => !["KafkaBrokers", "KafkaTopicPrefix", "ServicePublicKeys"].includes(m.name))
        .map((m) => m.instance.value),
      PG.password,
      REDIS.password,
      encodeURIComponent(REDIS.password),
    ]
    for (const fn of functions) {
      const { environment, ssm, link } = services.get(fn.name)!.args
      expect(Object.keys(ssm).sort(), fn.name).toEqual(fn.secrets.map((s) => s.key).sort())
      for (const key of secretKeys) expect(Object.keys(environment), `${fn.name} ${key}`).not.toContain(key)
      const plain = JSON.stringify(environment)
      for (const value of secretValues) expect(plain, fn.name).not.toContain(value)
      // A link puts the resource's properties (passwords) in the plain environment: only the bucket is linked, to the
      // functions that store files (their manifests declare S3_BUCKET).
      const storesFiles = (functionSettings[fn.name] ?? []).some((setting) => setting.key === "S3_BUCKET")
      expect(link, fn.name).toEqual(storesFiles ? [ofType(made, "sst.aws.Bucket")[0]!.instance] : [])
      for (const [key, arn] of Object.entries(ssm)) {
        const parameter = parameters.get(arn)
        expect(parameter, `${fn.name} ${key}`).toBeDefined()
        expect(parameter!.args).toMatchObject({ type: "SecureString", name: `/${APP}/production/${fn.name}/${key}` })
        expect(parameter!.args.value).toBe(expectedSecret(fn, key))
      }
    }
    expect(Object.keys(services.get("auth")!.args.ssm)).toContain("KEY_ENCRYPTION_KEY")
    // The functions that mail, as their manifests say (identity's mails, billing's receipts).
    const mailers = functions.filter((fn) => fn.secrets.some((s) => s.key === "SMTP_URL")).map((fn) => fn.name)
    expect(mailers).toEqual(expect.arrayContaining(["billing", "identity"]))
    for (const name of mailers) expect(Object.keys(services.get(name)!.args.ssm)).toContain("SMTP_URL")
    for (const fn of functions.filter((fn) => fn.name !== "auth")) {
      expect(Object.keys(services.get(fn.name)!.args.ssm), fn.name).not.toContain("KEY_ENCRYPTION_KEY")
    }
    for (const fn of functions.filter((fn) => !mailers.includes(fn.name))) {
      expect(Object.keys(services.get(fn.name)!.args.ssm), fn.name).not.toContain("SMTP_URL")
    }
  })

  it("connects to Redis over TLS with its auth token, and to Postgres with its password", async () => {
    const { made } = await load()
    const value = (key: string) => ofType(made, "aws.ssm.Parameter").find((m) => m.args.name.endsWith(`/${key}`))!.args
    const redis = new URL(value("REDIS_URL").value)
    expect(redis.protocol).toBe("rediss:")
    expect(decodeURIComponent(redis.password)).toBe(REDIS.password)
    expect([redis.hostname, redis.port]).toEqual([REDIS.host, String(REDIS.port)])
    const postgres = new URL(value("DATABASE_URL").value)
    expect(postgres.protocol).toBe("postgres:")
    expect([postgres.username, decodeURIComponent(postgres.password)]).toEqual([PG.username, PG.password])
    expect([postgres.hostname, postgres.port, postgres.pathname]).toEqual([PG.host, String(PG.port), `/${APP}`])
    expect(postgres.searchParams.get("sslmode")).toBe("no-verify")
  })

  it("sets the plain settings: NODE_ENV production, TRUSTED_PROXIES the VPC, Kafka brokers, public keys, APP_BASE_URL", async () => {
    const { made, output } = await load()
    const services = servicesOf(made)
    const gatewayUrl = services.get("gateway")!.instance.url
    for (const fn of functions) {
      const env = services.get(fn.name)!.args.environment
      expect(env.NODE_ENV, fn.name).toBe("production")
      for (const { key } of [...plainSettings, ...(functionSettings[fn.name] ?? [])]) {
        expect(env[key], `${fn.name} ${key}`).toBeDefined()
      }
      expect(env.TRUSTED_PROXIES, fn.name).toBe(VPC_CIDR)
      for (const entry of env.TRUSTED_PROXIES.split(",")) expect(entryProblem(entry)).toBeUndefined()
      expect(env.KAFKA_BROKERS, fn.name).toBe("<secret KafkaBrokers>")
      expect(env.SERVICE_PUBLIC_KEYS, fn.name).toBe("<secret ServicePublicKeys>")
      // The bucket's name for the functions that store files, as their manifests say.
      const storesFiles = (functionSettings[fn.name] ?? []).some((setting) => setting.key === "S3_BUCKET")
      expect(env.S3_BUCKET, fn.name).toBe(storesFiles ? "Blobs-bucket-name" : undefined)
      // Only a function whose manifest declares APP_BASE_URL (identity's mails, blog's feed) is given it: the gateway's URL.
      const declared = (functionSettings[fn.name] ?? []).some((setting) => setting.key === "APP_BASE_URL")
      if (!declared) expect(Object.keys(env), fn.name).not.toContain("APP_BASE_URL")
      else {
        const appBaseUrl = new URL(env.APP_BASE_URL)
        expect(appBaseUrl.href, fn.name).toBe(new URL(gatewayUrl).href)
        expect(["localhost", "127.0.0.1", "[::1]", "0.0.0.0"]).not.toContain(appBaseUrl.hostname)
      }
    }
    // The console's CSP lets it upload to the bucket (the SDK's presigned URLs: virtual-hosted, regional).
    expect(services.get("gateway")!.args.environment.CONSOLE_CONNECT_ORIGINS).toBe(
      "https://Blobs-bucket-name.s3.eu-west-1.amazonaws.com",
    )
    expect(functionSettings.identity?.map((setting) => setting.key)).toContain("APP_BASE_URL")
    expect(functionSettings.blog?.map((setting) => setting.key)).toContain("S3_BUCKET")
    expect(output).toEqual({ url: gatewayUrl })
  })

  it("makes one SST secret per value the operator provides (each listed in docs/deploy-sst.md)", async () => {
    const secrets = ofType((await load()).made, "sst.Secret")
    const names = secrets.map((m) => m.name)
    expect(new Set(names).size).toBe(names.length)
    expect(names.sort()).toEqual(
      [
        "KafkaBrokers",
        "KafkaTopicPrefix",
        "KeyEncryptionKey",
        "OidcProviders",
        "SentryDsn",
        "ServicePublicKeys",
        "SmtpUrl",
        ...functions.map((fn) => `ServiceKey${pascal(fn.name)}`),
      ].sort(),
    )
    // Optional (not required by plan()): a placeholder, so an unset secret does not stop the deploy.
    expect(secrets.find((m) => m.name === "OidcProviders")!.args).toBe("[]")
    expect(secrets.find((m) => m.name === "KafkaTopicPrefix")!.args).toBe("")
    expect(secrets.find((m) => m.name === "SentryDsn")!.args).toBe("")
    const docs = readFileSync(new URL("../docs/deploy-sst.md", import.meta.url), "utf8")
    for (const name of names) expect(docs, name).toMatch(new RegExp(`npx sst secret set ${name}\\b`))
  })

  it("serves a custom domain over HTTPS and links mails to it", async () => {
    const services = servicesOf((await evaluate({ domain: "app.example.com" })).made)
    const gateway = byName.get("gateway")!
    const { loadBalancer } = services.get("gateway")!.args
    expect(loadBalancer.domain).toBe("app.example.com")
    expect(loadBalancer.rules).toEqual([
      { listen: "80/http", redirect: "443/https" },
      { listen: "443/https", forward: `${gateway.ports.http}/http` },
    ])
    expect(services.get("identity")!.args.environment.APP_BASE_URL).toBe("https://app.example.com")
  })

  it("names the SSM parameters per stage and function, each once", async () => {
    const parameters = ofType((await evaluate({ stage: "staging" })).made, "aws.ssm.Parameter")
    const names = parameters.map((m) => m.args.name)
    expect(new Set(names).size).toBe(names.length)
    expect(names.length).toBe(functions.reduce((n, fn) => n + fn.secrets.length, 0))
    for (const name of names) expect(name).toMatch(/^\/platform\/staging\/[a-z-]+\/[A-Z_]+$/)
  })
})

describe("sst.config.ts run() under sst dev ($dev)", () => {
  it("gives every function local addresses, local servers and development settings", async () => {
    const { made, output } = await evaluate({ stage: "alice", dev: true })
    const services = servicesOf(made)
    expect([...services.keys()].sort()).toEqual(functions.map((fn) => fn.name).sort())
    for (const fn of functions) {
      const { environment: env, ssm, dev } = services.get(fn.name)!.args
      expect(dev).toEqual({ command: `node functions/${fn.name}/main.ts`, autostart: true })
      expect(env.NODE_ENV).toBe("development")
      expect(ssm, fn.name).toBeUndefined()
      for (const peer of fn.peers) {
        const address = `${peer.http ? "http://" : ""}localhost:${peer.port}${peer.path}`
        expect(env[peer.key], `${fn.name} ${peer.key}`).toBe(address)
        const url = new URL(peer.http ? env[peer.key] : `grpc://${env[peer.key]}`)
        expect(url.hostname).toBe("localhost")
      }
      if (fn.name !== "auth") {
        expect(env.AUTH_JWKS_URL).toBe(`http://localhost:${byName.get("auth")!.ports.http}/.well-known/jwks.json`)
      }
      // What the local run needs in plain environment (sst dev ignores `ssm`); development defaults for the rest.
      expect(Object.keys(env)).not.toContain("SERVICE_KEY")
      expect(Object.keys(env)).not.toContain("SMTP_URL")
      expect(Object.keys(env)).not.toContain("KAFKA_BROKERS")
      if (fn.secrets.some((s) => s.key === "DATABASE_URL")) {
        expect(env.DATABASE_URL).toBe(`postgres://${PG.username}:${PG.password}@${PG.host}:${PG.port}/${APP}`)
      }
      expect(env.REDIS_URL).toBe(`redis://${REDIS.host}:${REDIS.port}`)
    }
    expect(services.get("auth")!.args.environment.KEY_ENCRYPTION_KEY).toBe("<secret KeyEncryptionKey>")
    expect(services.get("identity")!.args.environment.APP_BASE_URL).toBe(
      `http://localhost:${byName.get("gateway")!.ports.http}`,
    )
    expect(ofType(made, "aws.ssm.Parameter")).toEqual([])
    expect(ofType(made, "sst.Secret").map((m) => m.name)).toEqual(["KeyEncryptionKey"])
    expect(output).toEqual({})
  })
})

/** The value a function's secret parameter must hold. */
function expectedSecret(fn: FunctionPlan, key: string): string {
  switch (key) {
    case "DATABASE_URL":
      return `postgres://${PG.username}:${PG.password}@${PG.host}:${PG.port}/${APP}?sslmode=no-verify`
    case "REDIS_URL":
      return `rediss://:${encodeURIComponent(REDIS.password)}@${REDIS.host}:${REDIS.port}`
    case "SERVICE_KEY":
      return `<secret ServiceKey${pascal(fn.name)}>`
    case "KEY_ENCRYPTION_KEY":
      return "<secret KeyEncryptionKey>"
    case "SMTP_URL":
      return "<secret SmtpUrl>"
    case "OIDC_PROVIDERS":
      return "<secret OidcProviders>"
    case "SENTRY_DSN":
      return "<secret SentryDsn>"
    default:
      throw new Error(`no expected value for ${key}`)
  }
}
