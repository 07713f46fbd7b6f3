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
    const vpc = new sst.aws.Vpc("Vpc", { bastion: true, nat: "ec2" })
    const cluster = new sst.aws.Cluster("Cluster", { vpc })
    const postgres = new sst.aws.Postgres("Postgres", {
      vpc,
      dev: { host: "127.0.0.1", port: 55432, username: "postgres", password: "", database: "platform" },
    })
    const redis = new sst.aws.Redis("Redis", { vpc, dev: { host: "127.0.0.1", port: 56379 } })
    const bucket = new sst.aws.Bucket("Blobs")

    const names = readdirSync("functions").filter((name) => existsSync(`functions/${name}/main.ts`))
    for (const name of names) {
      const { manifest } = await import(`./functions/${name}/module.ts`)
      const isGateway = name === "gateway"
      new sst.aws.Service(name, {
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
