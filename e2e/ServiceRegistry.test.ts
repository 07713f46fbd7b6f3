// The service registry's settings (SERVICE_REGISTRY and its keys, refused with a message naming the key) and the
// kubernetes registry's addresses against the objects the Kubernetes render (scripts/k8s.ts) writes.
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { afterEach, describe, expect, it, vi } from "vitest"
import { upstreamManifests } from "../functions/gateway/Config.ts"
import { manifests } from "../functions/registry.ts"
import { defaults, render } from "../scripts/k8s.ts"
import { spawnChild } from "../scripts/lib/processes.ts"
import * as Cfg from "../shared/Config.ts"
import { grpcUrlKey } from "../shared/Module.ts"
import { checks, config, NAMESPACE_FILE, ServiceRegistry } from "../shared/ServiceRegistry.ts"
import { sql } from "../shared/testing/harness.ts"
import { freePort } from "../shared/testing/ports.ts"

const ROOT = join(import.meta.dirname, "..")

// Reads with the environment as the test stubbed it (the default provider took its copy at start).
const withEnv = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.runPromise(
    effect.pipe(Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { ...process.env } as never })))),
  )

// The problems a function's start would list for the registry's keys, with `env` as its environment.
const problems = (env: Record<string, string | undefined>) => {
  for (const [key, value] of Object.entries(env)) vi.stubEnv(key, value)
  return withEnv(
    Cfg.load({ serviceRegistry: config, ...checks }).pipe(
      Effect.match({ onFailure: (invalid) => invalid.problems, onSuccess: () => [] }),
    ),
  )
}
const settings = (env: Record<string, string>) => {
  for (const [key, value] of Object.entries(env)) vi.stubEnv(key, value)
  return withEnv(Cfg.load({ serviceRegistry: config }))
}

afterEach(() => {
  vi.unstubAllEnvs()
})

describe("the registry's settings", () => {
  it("is static by default, and static reads <NAME>_GRPC_URL as before", async () => {
    vi.stubEnv("SERVICE_REGISTRY", undefined)
    vi.stubEnv(grpcUrlKey("authz"), "10.1.2.3:9999")
    expect((await withEnv(Cfg.load({ serviceRegistry: config }))).serviceRegistry).toEqual({
      kind: "static",
    })
    expect(await withEnv(Cfg.grpcAddress("authz", manifests))).toBe("10.1.2.3:9999")
  })

  it("etcd: endpoints as http:// origins, the prefix, the TTL and the advertised host, with defaults", async () => {
    const loaded = await settings({ SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: "127.0.0.1:2379, http://10.0.0.2:2379" })
    expect(loaded.serviceRegistry).toMatchObject({
      kind: "etcd",
      endpoints: ["http://127.0.0.1:2379", "http://10.0.0.2:2379"],
      prefix: "/platform/",
      ttlSeconds: 10,
    })
    expect(loaded.serviceRegistry.kind === "etcd" && loaded.serviceRegistry.advertiseHost.length).toBeGreaterThan(0)
    // The gRPC clients' target: the etcd resolver's scheme, the endpoints, the prefix and the function.
    expect(await withEnv(Cfg.grpcAddress("authz", manifests))).toBe(
      "etcd://127.0.0.1:2379,10.0.0.2:2379/platform/authz",
    )
  })

  it.each([
    [{ SERVICE_REGISTRY: "consul" }, /^SERVICE_REGISTRY: /],
    [{ SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: undefined }, /^ETCD_ENDPOINTS: missing$/],
    [{ SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: "127.0.0.1" }, /^ETCD_ENDPOINTS: expected host:port/],
    [{ SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: "https://a:1" }, /^ETCD_ENDPOINTS: expected host:port/],
    [{ SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: "a:1", SERVICE_TTL_SECONDS: "1" }, /^SERVICE_TTL_SECONDS: .*2 to/],
    [{ SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: "a:1", SERVICE_TTL_SECONDS: "2.5" }, /^SERVICE_TTL_SECONDS: /],
    [
      { SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: "a:1", SERVICE_REGISTRY_PREFIX: "platform" },
      /^SERVICE_REGISTRY_PREFIX: /,
    ],
    [{ SERVICE_REGISTRY: "etcd", ETCD_ENDPOINTS: "a:1", SERVICE_ADVERTISE_HOST: "a b" }, /^SERVICE_ADVERTISE_HOST: /],
    [
      { SERVICE_REGISTRY: "kubernetes", POD_NAMESPACE: "Not_A_Label" },
      /^POD_NAMESPACE: expected a Kubernetes namespace/,
    ],
    [
      { SERVICE_REGISTRY: "kubernetes", POD_NAMESPACE: "platform", KUBERNETES_CLUSTER_DOMAIN: "a..b" },
      /^KUBERNETES_CLUSTER_DOMAIN: /,
    ],
  ])("refuses %o with a message naming the key", async (env, message) => {
    const found = await problems(env)
    expect(found).toHaveLength(1)
    expect(found[0]).toMatch(message)
  })

  it("lists every bad key at once, each once (the registry's keys are read under every gRPC address too)", async () => {
    for (const [key, value] of Object.entries({
      SERVICE_REGISTRY: "etcd",
      SERVICE_TTL_SECONDS: "1",
      SERVICE_REGISTRY_PREFIX: "bad",
    })) {
      vi.stubEnv(key, value)
    }
    const found = await withEnv(
      Cfg.load({
        ...Cfg.base({ httpPort: 1 }),
        authz: Cfg.grpcAddress("authz", manifests),
        identity: Cfg.grpcAddress("identity", manifests),
      }).pipe(Effect.match({ onFailure: (invalid) => invalid.problems, onSuccess: () => [] })),
    )
    expect(found).toEqual([
      "SERVICE_REGISTRY_PREFIX: expected a key prefix starting and ending with / (/platform/)",
      "SERVICE_TTL_SECONDS: expected an integer from 2 to 3600",
    ])
  })

  it.skipIf(existsSync(NAMESPACE_FILE))(
    "kubernetes without a namespace (no POD_NAMESPACE, no service account file) is refused",
    async () => {
      vi.stubEnv("POD_NAMESPACE", undefined)
      expect(await problems({ SERVICE_REGISTRY: "kubernetes" })).toEqual([
        `POD_NAMESPACE: missing: SERVICE_REGISTRY=kubernetes needs the namespace (set POD_NAMESPACE from the downward API's metadata.namespace, or run in a pod with ${NAMESPACE_FILE})`,
      ])
    },
  )

  it("a function given a bad value refuses to start, naming the key (exit 1)", async () => {
    const child = spawnChild({
      name: "authz",
      args: [join(ROOT, "functions", "authz", "main.ts")],
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_OPTIONS: undefined,
        SERVICE_REGISTRY: "etcd",
        ETCD_ENDPOINTS: "127.0.0.1:52379",
        SERVICE_TTL_SECONDS: "1",
      },
    })
    const exit = await child.exited
    expect(exit.code).toBe(1)
    expect(child.output()).toContain("SERVICE_TTL_SECONDS: expected an integer from 2 to 3600")
  }, 30_000)

  it("a function whose etcd does not answer refuses to start, naming it (exit 1), and leaves no retry running", async () => {
    const [etcdPort, http, grpc] = [await freePort(), await freePort(), await freePort()]
    const schema = `sr_${randomBytes(4).toString("hex")}`
    const child = spawnChild({
      name: "authz",
      args: [join(ROOT, "functions", "authz", "main.ts")],
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_OPTIONS: undefined,
        KAFKA_BROKERS: undefined,
        LOG_LEVEL: "warn",
        DB_SCHEMA: schema,
        HTTP_PORT: String(http),
        GRPC_PORT: String(grpc),
        SERVICE_REGISTRY: "etcd",
        ETCD_ENDPOINTS: `127.0.0.1:${etcdPort}`,
      },
    })
    try {
      expect((await child.exited).code).toBe(1)
      expect(child.output()).toContain(`etcd at http://127.0.0.1:${etcdPort} did not answer`)
      expect(child.output()).not.toContain("registering again")
    } finally {
      await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    }
  }, 30_000)
})

// The render's Services: kind, name, namespace, whether headless, and ports (its YAML is written by scripts/k8s.ts).
const renderedServices = () => {
  const files = render(defaults)
  return [...files.values()]
    .flatMap((file) => file.split(/^---$/m))
    .filter((doc) => /^kind: Service$/m.test(doc))
    .map((doc) => ({
      name: /^metadata:\n {2}name: (\S+)$/m.exec(doc)?.[1],
      namespace: /^ {2}namespace: (\S+)$/m.exec(doc)?.[1],
      headless: /^ {2}clusterIP: None$/m.test(doc),
      ports: [...doc.matchAll(/^ {6}port: (\d+)$/gm)].map((m) => Number(m[1])),
    }))
}

describe("the kubernetes registry", () => {
  const dns = { namespace: defaults.namespace, clusterDomain: "cluster.local" }
  const services = renderedServices()

  it("sends the gateway's upstreams to the ClusterIP Services the render writes, on their HTTP ports", async () => {
    const upstreams = upstreamManifests()
    const registry = Effect.runSync(
      Effect.map(Layer.build(ServiceRegistry.layerKubernetes(dns, upstreams)).pipe(Effect.scoped), (context) =>
        Context.get(context, ServiceRegistry),
      ),
    )
    expect(registry.names).toEqual(upstreams.map((m) => m.name))
    for (const m of upstreams) {
      const origin = registry.resolveNow(m.name)!
      const [service, namespace, svc, ...domain] = origin.hostname.split(".")
      expect([namespace, svc, domain.join(".")]).toEqual([dns.namespace, "svc", "cluster.local"])
      expect(services).toContainEqual({ name: service, namespace, headless: false, ports: [m.ports.http] })
      expect(Number(origin.port)).toBe(m.ports.http)
    }
  })

  it("finds its namespace in every rendered pod (POD_NAMESPACE from the downward API)", () => {
    const deployments = [...render(defaults).values()]
      .flatMap((file) => file.split(/^---$/m))
      .filter((doc) => /^kind: Deployment$/m.test(doc))
    expect(deployments.length).toBe(manifests.length)
    for (const doc of deployments) {
      expect(doc).toMatch(/- name: POD_NAMESPACE\n\s+valueFrom:\n\s+fieldRef:\n\s+fieldPath: metadata\.namespace\n/)
    }
  })

  it("gives the gRPC clients the headless Services the render writes (dns:///, every pod), as its peers get them", async () => {
    vi.stubEnv("SERVICE_REGISTRY", "kubernetes")
    vi.stubEnv("POD_NAMESPACE", dns.namespace)
    const files = render(defaults)
    for (const m of manifests.filter((x) => x.ports.grpc !== undefined)) {
      const target = await withEnv(Cfg.grpcAddress(m.name, manifests))
      const match = /^dns:\/\/\/([^.]+)\.([^.]+)\.svc\.cluster\.local:(\d+)$/.exec(target)
      expect(match, target).not.toBeNull()
      expect(services).toContainEqual({ name: match![1], namespace: match![2], headless: true, ports: [m.ports.grpc] })
      // The same address the render hands its callers in `<NAME>_GRPC_URL`.
      const rendered = [...files.values()].some((file) =>
        new RegExp(`- name: ${grpcUrlKey(m.name)}\\n\\s+value: ${target.replaceAll(".", "\\.")}\\n`).test(file),
      )
      expect(rendered, `${grpcUrlKey(m.name)}=${target} in the render`).toBe(true)
    }
  })
})
