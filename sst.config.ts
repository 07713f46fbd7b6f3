/// <reference path="./.sst/platform/config.d.ts" />

// SST app (SST v4: the v3 `$config` format on the Pulumi AWS v7 provider): one ECS Fargate service per function, built
// from infra/Dockerfile with FUNCTION as its only build argument; RDS Postgres, ElastiCache Redis (TLS + auth token),
// an S3 bucket; the gateway behind a load balancer. What each function gets comes from infra/deploy.ts (`plan()`): its
// ports, where the functions it calls live, its secrets and its plain settings. Secrets reach a task as ECS secrets
// (SSM SecureString parameters through `ssm`), only the task that needs them, never as plain environment variables.
// `sst dev` deploys nothing of the functions: it runs each one on this machine (`node functions/<name>/main.ts`) with
// local addresses. docs/deploy-sst.md lists the secrets to set and the commands; infra/sst.test.ts evaluates `run()`.
export default $config({
  app(input) {
    return {
      name: "platform",
      home: "aws",
      removal: input?.stage === "production" ? "retain" : "remove",
      protect: input?.stage === "production",
    }
  },
  async run() {
    const { functionSettings, plainSettings, plan } = await import("./infra/deploy.ts")
    // The public function (the gateway) first: identity's APP_BASE_URL is its load balancer's URL.
    const functions = plan().sort((a, b) => Number(b.public) - Number(a.public))
    const gateway = functions.find((fn) => fn.public)
    if (gateway === undefined) throw new Error("infra/deploy.ts: no public function (the gateway)")
    // A custom domain for the gateway (Route 53 in this account): `PLATFORM_DOMAIN=app.example.com sst deploy ...`;
    // without one, the load balancer's own http:// URL. Set it on every deploy of that stage.
    const domain = process.env.PLATFORM_DOMAIN || undefined

    const vpc = new sst.aws.Vpc("Vpc", { bastion: true, nat: "ec2" })
    const cluster = new sst.aws.Cluster("Cluster", { vpc })
    // The same local servers as infra/up.sh under `sst dev`.
    const postgres = new sst.aws.Postgres("Postgres", {
      vpc,
      dev: { host: "127.0.0.1", port: 55432, username: "postgres", password: "", database: "platform" },
    })
    // Not cluster mode: the functions' ioredis client is a single-node client.
    const redis = new sst.aws.Redis("Redis", { vpc, cluster: false, dev: { host: "127.0.0.1", port: 56379 } })
    const bucket = new sst.aws.Bucket("Blobs")

    const secrets = new Map<string, sst.Secret>()
    /** An SST secret (`sst secret set <name> <value> --stage <stage>`), made once however often it is used. */
    const secret = (name: string, placeholder?: string) => {
      let made = secrets.get(name)
      if (made === undefined) {
        made = new sst.Secret(name, placeholder)
        secrets.set(name, made)
      }
      return made.value
    }
    const encoded = (value: $util.Input<string>) => $util.output(value).apply(encodeURIComponent)
    /** `user-prefs` → `UserPrefs`, `SERVICE_KEY` → `ServiceKey`: resource names. */
    const pascal = (name: string) =>
      name
        .toLowerCase()
        .split(/[-_]/)
        .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
        .join("")

    // RDS Postgres accepts TLS (SST leaves rds.force_ssl off); `no-verify` encrypts without checking the certificate,
    // which Node cannot check: the RDS CA is not in its trust store (verify-full needs the RDS bundle in the image).
    const databaseUrl = $interpolate`postgres://${encoded(postgres.username)}:${encoded(postgres.password)}@${postgres.host}:${postgres.port}/${postgres.database}${$dev ? "" : "?sslmode=no-verify"}`
    // ElastiCache as SST makes it requires TLS (rediss) and its auth token; the local Redis of `sst dev` has neither.
    const redisUrl = $dev
      ? $interpolate`redis://${redis.host}:${redis.port}`
      : $interpolate`rediss://:${encoded(redis.password)}@${redis.host}:${redis.port}`

    /**
     * The value of a secret of `plan()` for one function; under `sst dev` only what the local run needs. A function's
     * own secrets (its manifest's `secrets`) are SST secrets named after their keys (`SMTP_URL` → `SmtpUrl`).
     */
    const secretValue = (
      fn: string,
      spec: (typeof functions)[number]["secrets"][number],
    ): $util.Input<string> | undefined => {
      switch (spec.key) {
        case "DATABASE_URL":
          return databaseUrl
        case "REDIS_URL":
          return redisUrl
        // Outside production the functions fall back to development keys.
        case "SERVICE_KEY":
          return $dev ? undefined : secret(`ServiceKey${pascal(fn)}`)
        default:
          // Outside production a function falls back to development values (the dev mailbox) unless it declares
          // the secret `local` (auth's key encryption key).
          return $dev && !spec.local ? undefined : secret(pascal(spec.key), spec.placeholder)
      }
    }

    // The ECS service-discovery name of a function: what `sst.aws.Service#service` returns for it,
    // `<name>.<stage>.<app>.<the VPC's Cloud Map namespace>`. Computed from names, so no service has to exist before
    // another is given its address (auth calls identity; identity verifies auth's tokens).
    const discoveryName = (name: string) =>
      $interpolate`${name}.${$app.stage}.${$app.name}.${vpc.nodes.cloudmapNamespace.name}`
    const address = (peer: { dependency: string; port: number; http: boolean; path: string }) =>
      $interpolate`${peer.http ? "http://" : ""}${$dev ? "localhost" : discoveryName(peer.dependency)}:${peer.port}${peer.path}`

    const services: Record<string, sst.aws.Service> = {}
    /** The value of a plain setting of `plan()`. */
    const settingValue = (key: string): $util.Input<string> | undefined => {
      switch (key) {
        // No SST Kafka component: MSK, Redpanda, ... reachable from the VPC. Under `sst dev`: the Postgres-backed bus.
        case "KAFKA_BROKERS":
          return $dev ? undefined : secret("KafkaBrokers")
        // Per stage, for stages sharing one Kafka cluster (`staging.`); none until set.
        case "KAFKA_TOPIC_PREFIX":
          return $dev ? undefined : secret("KafkaTopicPrefix", "")
        // Public keys (not secret), one map for every function (`npm run keys:generate`); dev keys under `sst dev`.
        case "SERVICE_PUBLIC_KEYS":
          return $dev ? undefined : secret("ServicePublicKeys")
        // The platform's bucket, for the functions that store files (their manifests declare S3_BUCKET).
        case "S3_BUCKET":
          return bucket.name
        // The console (served by the gateway) uploads attachments straight to the bucket with presigned URLs: its CSP
        // lets it send there (virtual-hosted, regional: the SDK's form of those URLs). SST's bucket allows CORS.
        case "CONSOLE_CONNECT_ORIGINS":
          return $interpolate`https://${bucket.nodes.bucket.bucketRegionalDomainName}`
        // The load balancer and the gateway reach the functions from inside the VPC (SST's Vpc: 10.0.0.0/16).
        case "TRUSTED_PROXIES":
          return $dev ? "127.0.0.1,::1" : vpc.nodes.vpc.cidrBlock
        // Where mails link to, never localhost in production (identity refuses to start with it): the custom domain,
        // else the gateway's load balancer (made first).
        case "APP_BASE_URL":
          return $dev
            ? `http://localhost:${gateway.ports.http}`
            : domain
              ? `https://${domain}`
              : services[gateway.name]!.url
        default:
          throw new Error(`sst.config.ts: no value for the setting ${key} (infra/deploy.ts)`)
      }
    }

    /** The entries with a value, as an object. */
    const present = <V>(entries: ReadonlyArray<readonly [string, V | undefined]>) =>
      Object.fromEntries(entries.filter(([, value]) => value !== undefined)) as Record<string, V>

    for (const fn of functions) {
      const { name, ports } = fn
      const settings = [...plainSettings, ...(functionSettings[name] ?? [])].map(({ key }) => [key, settingValue(key)])
      const values = fn.secrets.map((spec) => [spec.key, secretValue(name, spec)] as const)

      services[name] = new sst.aws.Service(name, {
        cluster,
        // The Dockerfile derives ports, health check and contents from the function's manifest.
        image: { context: ".", dockerfile: "infra/Dockerfile", args: { FUNCTION: name } },
        // The task role's access to the bucket, for a function that stores files (its name comes as S3_BUCKET).
        // Postgres, Redis and secrets are not linked: a link puts the resource's properties (passwords) in the task's
        // plain environment.
        link: settings.some(([key]) => key === "S3_BUCKET") ? [bucket] : [],
        environment: {
          NODE_ENV: $dev ? "development" : "production",
          HTTP_PORT: String(ports.http),
          // A function without gRPC gets no GRPC_PORT (the gateway would listen on a random port).
          ...(ports.grpc ? { GRPC_PORT: String(ports.grpc) } : {}),
          // <DEP>_URL, <DEP>_GRPC_URL, AUTH_JWKS_URL (every function but auth).
          ...Object.fromEntries(fn.peers.map((peer) => [peer.key, address(peer)])),
          ...present(settings),
          // `sst dev` starts the functions here with `environment` only (it ignores `ssm`); nothing is deployed.
          ...($dev ? present(values) : {}),
        },
        // ECS secrets: the task's execution role reads each parameter when the task starts.
        ssm: $dev
          ? undefined
          : present(values.map(([key, value]) => [key, value && parameter(name, key, value)] as const)),
        // Exec form, absolute path: the distroless runtime image has no shell and no `node` on PATH.
        health: {
          command: [
            "CMD",
            "/nodejs/bin/node",
            "-e",
            `fetch('http://127.0.0.1:${ports.http}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`,
          ],
          startPeriod: "10 seconds",
          interval: "15 seconds",
          timeout: "3 seconds",
          retries: 3,
        },
        loadBalancer: fn.public
          ? {
              ...(domain ? { domain } : {}),
              rules: domain
                ? [
                    { listen: "80/http", redirect: "443/https" },
                    { listen: "443/https", forward: `${ports.http}/http` },
                  ]
                : [{ listen: "80/http", forward: `${ports.http}/http` }],
              // Liveness, not /readyz: ECS replaces tasks the load balancer finds unhealthy, and readiness fails
              // with a dependency (Redis, Kafka), which would replace every gateway task at once.
              health: { [`${ports.http}/http`]: { path: "/healthz", interval: "15 seconds", healthyThreshold: 2 } },
            }
          : undefined,
        dev: { command: `node functions/${name}/main.ts`, autostart: true },
      })
    }

    /** An SSM SecureString parameter holding one secret of one function; its ARN goes into the task's `secrets`. */
    function parameter(fn: string, key: string, value: $util.Input<string>) {
      return new aws.ssm.Parameter(`${pascal(fn)}${pascal(key)}Parameter`, {
        name: `/${$app.name}/${$app.stage}/${fn}/${key}`,
        type: "SecureString",
        // Standard (free) up to 4 KB; larger values (OIDC_PROVIDERS) become advanced parameters.
        tier: "Intelligent-Tiering",
        value,
      }).arn
    }

    return $dev ? {} : { url: services[gateway.name]!.url }
  },
})
