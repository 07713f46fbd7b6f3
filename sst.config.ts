/// <reference path="./.sst/platform/config.d.ts" />

// SST app: one ECS (Fargate) service per function, built from infra/Dockerfile, behind the gateway's load
// balancer; RDS Postgres, ElastiCache Redis and an S3 bucket linked in. `sst dev` runs each function locally
// (`node functions/<name>/main.ts`) against the same linked resources (or local ones through `dev` props).
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
    const { readdirSync, existsSync } = await import("node:fs")
    const { peerAddresses, startOrder } = await import("./shared/Module.ts")
    const vpc = new sst.aws.Vpc("Vpc", { bastion: true, nat: "ec2" })
    const cluster = new sst.aws.Cluster("Cluster", { vpc })
    const postgres = new sst.aws.Postgres("Postgres", {
      vpc,
      dev: { host: "127.0.0.1", port: 55432, username: "postgres", password: "", database: "platform" },
    })
    const redis = new sst.aws.Redis("Redis", { vpc, dev: { host: "127.0.0.1", port: 56379 } })
    const bucket = new sst.aws.Bucket("Blobs")
    // Encrypts auth's signing keys at rest: `sst secret set KeyEncryptionKey "$(openssl rand -base64 32)"`.
    const keyEncryptionKey = new sst.Secret("KeyEncryptionKey")

    const names = readdirSync("functions").filter((name) => existsSync(`functions/${name}/main.ts`))
    const manifests = []
    for (const name of names) manifests.push((await import(`./functions/${name}/module.ts`)).manifest)
    // Dependencies first, so a function can be told where the services it calls live (<DEP>_GRPC_URL); auth as early
    // as its own dependencies allow, so the functions after it get its AUTH_JWKS_URL. Identity comes before auth
    // (auth calls it), so it cannot be given auth's address from here: set AUTH_JWKS_URL for it by hand.
    const ordered = startOrder([...manifests.filter((m) => m.name === "auth"), ...manifests])
    const services = {}
    for (const manifest of ordered) {
      const name = manifest.name
      const isGateway = name === "gateway"
      // Where it finds the others: <DEP>_URL over HTTP (the gateway's upstreams), <DEP>_GRPC_URL over gRPC, and
      // AUTH_JWKS_URL (auth's keys; every function but auth verifies access tokens).
      const peers = Object.fromEntries(
        peerAddresses(manifest, manifests)
          .filter((peer) => services[peer.dependency])
          .map((peer) => [
            peer.key,
            $interpolate`${peer.http ? "http://" : ""}${services[peer.dependency].service}:${peer.port}${peer.path}`,
          ]),
      )
      services[name] = new sst.aws.Service(name, {
        cluster,
        image: { context: ".", dockerfile: "infra/Dockerfile", args: { FUNCTION: name } },
        link: [postgres, redis, bucket],
        environment: {
          NODE_ENV: "production",
          HTTP_PORT: String(manifest.ports.http),
          GRPC_PORT: String(manifest.ports.grpc ?? 0),
          DATABASE_URL: $interpolate`postgres://${postgres.username}:${postgres.password}@${postgres.host}:${postgres.port}/${postgres.database}`,
          REDIS_URL: $interpolate`redis://${redis.host}:${redis.port}`,
          S3_BUCKET: bucket.name,
          ...(name === "auth" ? { KEY_ENCRYPTION_KEY: keyEncryptionKey.value } : {}),
          ...peers,
        },
        serviceRegistry: isGateway ? undefined : { port: manifest.ports.http },
        loadBalancer: isGateway
          ? { ports: [{ listen: "80/http", forward: `${manifest.ports.http}/http` }] }
          : undefined,
        health: {
          command: [
            "CMD",
            "node",
            "-e",
            `fetch('http://127.0.0.1:${manifest.ports.http}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`,
          ],
        },
        dev: { command: `node functions/${name}/main.ts`, autostart: true },
      })
    }
  },
})
