// The Kubernetes render (scripts/k8s.ts) against the deploy plan (infra/deploy.ts) and real validators: the objects
// are what the plan says (one Secret per function, network policies from the peers, Pod Security restricted), they
// pass `kubernetes-validate --strict` and `kube-score`, and `kustomize build` (what `kubectl apply -k` runs) turns
// the directory with the operator's secrets files into valid objects. The tools are installed by infra/k8s-tools.sh
// into .infra (first run: a few minutes of Go builds; then instant); the YAML is read by the PyYAML the validator
// venv already has.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runCommand } from "../shared/testing/command.ts"
import { type FunctionPlan, functionSettings, plainSettings, plan } from "./deploy.ts"

const repo = fileURLToPath(new URL("..", import.meta.url))
const infraDir = process.env.INFRA_DIR ?? join(repo, ".infra")
const python = join(infraDir, "k8s-venv/bin/python")
const kubernetesValidate = join(infraDir, "k8s-venv/bin/kubernetes-validate")
const kubeScore = join(infraDir, "bin/kube-score")
const kustomize = join(infraDir, "bin/kustomize")
const KUBERNETES_VERSION = "1.33.0"

/** kube-score checks that cannot apply here, each with the reason: the one place they are listed. */
const kubeScoreIgnored: ReadonlyArray<{ readonly test: string; readonly why: string }> = [
  {
    test: "container-image-pull-policy",
    why: "images have versioned, never-overwritten tags: IfNotPresent, so pods restart while the registry is down",
  },
]
/** Optional kube-score checks that apply and are turned on. */
const kubeScoreOptional = ["container-ports-check"]

const run = (command: string, args: ReadonlyArray<string>, cwd = repo) => {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  return runCommand(command, args, { cwd, env })
}

const render = async (out: string, ...options: Array<string>) => {
  const result = await run(process.execPath, ["scripts/k8s.ts", "--out", out, ...options])
  if (result.code !== 0) throw new Error(`scripts/k8s.ts failed (${result.code}):\n${result.stderr}`)
  return result
}

type K8sObject = {
  apiVersion: string
  kind: string
  metadata: { name: string; namespace?: string; labels?: Record<string, string> }
  [k: string]: any
}

/** Every YAML document of the files, by file, parsed by PyYAML (YAML 1.1, like kubectl's reader). */
const parseYaml = async (files: ReadonlyArray<string>): Promise<Record<string, Array<K8sObject>>> => {
  const script =
    "import json, sys, yaml\n" +
    "json.dump({f: [d for d in yaml.safe_load_all(open(f)) if d is not None] for f in sys.argv[1:]}, sys.stdout)"
  const result = await run(python, ["-c", script, ...files])
  if (result.code !== 0) throw new Error(`YAML parse failed:\n${result.stderr}`)
  return JSON.parse(result.stdout)
}

const plans = plan()
const sorted = (list: Iterable<string>) => [...new Set(list)].sort()
const portsOf = (p: FunctionPlan) => [p.ports.http, ...(p.ports.grpc ? [p.ports.grpc] : [])]
const nameLabel = "app.kubernetes.io/name"

const root = mkdtempSync(join(tmpdir(), "platform-k8s-"))
const dir = join(root, "default")
const custom = join(root, "custom")
let files: Array<string> = []
let objects: Array<K8sObject> = []
let customObjects: Array<K8sObject> = []
let kustomization: K8sObject
let built: Array<K8sObject> = []
const builtFile = join(root, "built.yaml")

const one = (list: ReadonlyArray<K8sObject>, kind: string, name: string) => {
  const found = list.filter((o) => o.kind === kind && o.metadata.name === name)
  expect(found, `${kind}/${name}`).toHaveLength(1)
  return found[0]!
}
const podSpecs = (list: ReadonlyArray<K8sObject>) =>
  list.filter((o) => o.kind === "Deployment").map((d) => d.spec.template.spec)
const envOf = (deployment: K8sObject): Record<string, string> =>
  Object.fromEntries(deployment.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value]))
const secretsExample = (fn: string) => readFileSync(join(dir, "secrets", `${fn}.env.example`), "utf8")

afterAll(() => rmSync(root, { recursive: true, force: true }))

beforeAll(async () => {
  const started = Date.now()
  const tools = await run("bash", ["infra/k8s-tools.sh"])
  if (tools.code !== 0) throw new Error(`infra/k8s-tools.sh failed:\n${tools.stderr}`)
  console.log(
    `k8s tools ready in ${((Date.now() - started) / 1000).toFixed(1)} s${tools.stderr ? `:\n${tools.stderr}` : ""}`,
  )
  await render(dir)
  await render(
    custom,
    ...["--namespace", "apps", "--image-prefix", "registry.example.com/team", "--tag", "2.0.1"],
    ...["--pod-cidr", "10.244.0.0/16,fd00::/8", "--host", "api.example.org", "--ingress-class", "traefik"],
    ...["--ingress-namespace", "traefik", "--set", "KAFKA_BROKERS=k1:9092,k2:9092"],
    ...["--set", "APP_BASE_URL=https://api.example.org", "--set", "KAFKA_TOPIC_PREFIX=staging."],
  )
  // What the operator does: secrets/<function>.env from the examples (here: the required keys, dummy values).
  for (const p of plans) {
    const filled = secretsExample(p.name).replace(/^([A-Z0-9_]+)=$/gm, (_, key) => `${key}=test-${key.toLowerCase()}`)
    writeFileSync(join(dir, "secrets", `${p.name}.env`), filled)
  }
  const build = await run(kustomize, ["build", dir])
  if (build.code !== 0) throw new Error(`kustomize build failed:\n${build.stderr}`)
  writeFileSync(builtFile, build.stdout)
  const parsed = await parseYaml(
    [
      join(dir, "kustomization.yaml"),
      ...readdirSync(dir).map((f) => join(dir, f)),
      ...readdirSync(custom).map((f) => join(custom, f)),
      builtFile,
    ].filter((f) => f.endsWith(".yaml")),
  )
  kustomization = parsed[join(dir, "kustomization.yaml")]![0]!
  files = (kustomization.resources as Array<string>).map((f) => join(dir, f))
  objects = files.flatMap((f) => parsed[f] ?? [])
  customObjects = (kustomization.resources as Array<string>).flatMap((f) => parsed[join(custom, f)] ?? [])
  built = parsed[builtFile] ?? []
}, 900_000)

describe("k8s render (scripts/k8s.ts)", () => {
  it("lists every object file in kustomization.yaml, with a Secret generated per function from its own file", () => {
    const yamlFiles = readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
    expect(sorted(kustomization.resources)).toEqual(sorted(yamlFiles))
    expect(kustomization.secretGenerator).toEqual(
      plans.map((p) =>
        expect.objectContaining({ name: `${p.name}-secrets`, namespace: "platform", envs: [`secrets/${p.name}.env`] }),
      ),
    )
    // No secret value in the render: no Secret object, and the examples have keys without values.
    expect(objects.filter((o) => o.kind === "Secret")).toEqual([])
    for (const p of plans) {
      const example = secretsExample(p.name)
      expect(example.match(/^(# )?[A-Z0-9_]+=.*$/gm)?.map((line) => line.replace(/^# /, ""))).toEqual(
        p.secrets.map((s) => `${s.key}=`),
      )
      for (const s of p.secrets) {
        expect(example).toContain(`# ${s.required ? "required" : "optional"}: ${s.description}\n`)
        // Optional keys are commented out: an empty value would be read as set.
        expect(example).toMatch(new RegExp(`^${s.required ? "" : "# "}${s.key}=$`, "m"))
      }
    }
    const withKek = plans.filter((p) => /^KEY_ENCRYPTION_KEY=$/m.test(secretsExample(p.name))).map((p) => p.name)
    expect(withKek).toEqual(["auth"])
  })

  it("makes the namespace Pod Security restricted with a default deny of all traffic", () => {
    const ns = one(objects, "Namespace", "platform")
    for (const mode of ["enforce", "audit", "warn"])
      expect(ns.metadata.labels?.[`pod-security.kubernetes.io/${mode}`]).toBe("restricted")
    const deny = one(objects, "NetworkPolicy", "default-deny")
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ["Ingress", "Egress"] })
    for (const o of objects.filter((o) => o.kind !== "Namespace")) expect(o.metadata.namespace).toBe("platform")
  })

  it("gives the plain settings in ConfigMaps: placeholders, TRUSTED_PROXIES = the pod network", () => {
    const shared = one(objects, "ConfigMap", "platform-config")
    expect(Object.keys(shared.data).sort()).toEqual(plainSettings.map((s) => s.key).sort())
    expect(shared.data.TRUSTED_PROXIES).toBe("10.0.0.0/8")
    expect(shared.data.KAFKA_BROKERS).toBe("CHANGE-ME")
    // Optional: its default, no placeholder to replace.
    expect(shared.data.KAFKA_TOPIC_PREFIX).toBe("")
    for (const p of plans) {
      const settings = functionSettings[p.name] ?? []
      const own = objects.filter((o) => o.kind === "ConfigMap" && o.metadata.name === `${p.name}-config`)
      expect(own.map((c) => Object.keys(c.data).sort())).toEqual(
        settings.length > 0 ? [settings.map((s) => s.key).sort()] : [],
      )
    }
    const text = readFileSync(join(dir, "config.yaml"), "utf8")
    expect(text).toContain("# CHANGE-ME: comma-separated Kafka brokers")
  })

  it("deploys every function: ServiceAccount, Deployment, Services, PDB, HPA; an Ingress for the public one only", () => {
    for (const p of plans) {
      expect(one(objects, "ServiceAccount", p.name).automountServiceAccountToken).toBe(false)
      const deployment = one(objects, "Deployment", p.name)
      expect(deployment.spec.replicas).toBeUndefined() // the HPA owns it
      const pod = deployment.spec.template.spec
      expect(pod.serviceAccountName).toBe(p.name)
      expect(pod.automountServiceAccountToken).toBe(false)
      expect(pod.topologySpreadConstraints?.length ?? pod.affinity?.podAntiAffinity).toBeTruthy()
      const [container, ...others] = pod.containers
      expect(others).toEqual([])
      expect(container.image).toBe(`platform/${p.name}:${p.manifest.version}`)
      expect(container.imagePullPolicy).toBe("IfNotPresent")
      expect(container.ports.map((port: any) => port.containerPort)).toEqual(portsOf(p))
      for (const kind of ["requests", "limits"])
        expect(Object.keys(container.resources[kind])).toEqual(expect.arrayContaining(["cpu", "memory"]))
      expect(container.readinessProbe.httpGet.path).toBe("/readyz")
      expect(container.livenessProbe.httpGet.path).toBe("/healthz")
      // Only its own Secret, and the ConfigMaps.
      expect(container.envFrom).toEqual([
        { secretRef: { name: `${p.name}-secrets` } },
        { configMapRef: { name: "platform-config" } },
        ...((functionSettings[p.name] ?? []).length > 0 ? [{ configMapRef: { name: `${p.name}-config` } }] : []),
      ])
      const env = envOf(deployment)
      expect(env.NODE_ENV).toBe("production")
      expect(env.HTTP_PORT).toBe(String(p.ports.http))
      expect(env.GRPC_PORT).toBe(p.ports.grpc ? String(p.ports.grpc) : undefined)
      for (const peer of p.peers) {
        expect(env[peer.key]).toBe(
          peer.http
            ? `http://${peer.dependency}.platform.svc:${peer.port}${peer.path}`
            : `dns:///${peer.dependency}-grpc.platform.svc.cluster.local:${peer.port}`,
        )
      }

      const service = one(objects, "Service", p.name)
      expect(service.spec.type).toBe("ClusterIP")
      expect(service.spec.ports.map((port: any) => port.port)).toEqual([p.ports.http])
      const headless = objects.filter((o) => o.kind === "Service" && o.metadata.name === `${p.name}-grpc`)
      expect(headless.map((s) => [s.spec.clusterIP, s.spec.ports[0].port])).toEqual(
        p.ports.grpc ? [["None", p.ports.grpc]] : [],
      )
      for (const s of [service, ...headless]) expect(s.spec.selector).toEqual({ [nameLabel]: p.name })

      expect(one(objects, "PodDisruptionBudget", p.name).spec).toEqual({
        minAvailable: 1,
        selector: { matchLabels: { [nameLabel]: p.name } },
      })
      const hpa = one(objects, "HorizontalPodAutoscaler", p.name)
      expect(hpa.apiVersion).toBe("autoscaling/v2")
      expect(hpa.spec).toMatchObject({ minReplicas: 2, maxReplicas: 10 })
      expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: "apps/v1", kind: "Deployment", name: p.name })
      expect(hpa.spec.metrics).toEqual([
        { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } },
      ])
    }
    const ingresses = objects.filter((o) => o.kind === "Ingress")
    expect(ingresses.map((i) => i.metadata.name)).toEqual(plans.filter((p) => p.public).map((p) => p.name))
    expect(plans.filter((p) => p.public).map((p) => p.name)).toEqual(["gateway"])
    const [ingress] = ingresses
    const gateway = plans.find((p) => p.public)!
    expect(ingress!.spec.ingressClassName).toBe("nginx")
    expect(ingress!.spec.rules).toEqual([
      {
        host: "platform.example.com",
        http: {
          paths: [
            {
              path: "/",
              pathType: "Prefix",
              backend: { service: { name: gateway.name, port: { number: gateway.ports.http } } },
            },
          ],
        },
      },
    ])
  })

  it("runs every pod Pod Security restricted: non-root 65532, RuntimeDefault seccomp, no privilege, read-only root", () => {
    const specs = podSpecs(objects)
    expect(specs).toHaveLength(plans.length)
    for (const pod of specs) {
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 65532,
        seccompProfile: { type: "RuntimeDefault" },
      })
      for (const container of pod.containers) {
        expect(container.securityContext).toMatchObject({
          runAsNonRoot: true,
          runAsUser: 65532,
          seccompProfile: { type: "RuntimeDefault" },
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ["ALL"] },
        })
      }
    }
    const images = JSON.stringify(objects).match(/"image":"[^"]*"/g) ?? []
    expect(images).toHaveLength(plans.length)
    for (const image of images) expect(image).not.toMatch(/:latest"$|\/[^:]*"$/)
  })

  it("lets a function be reached only by its callers (and auth's JWKS by the token verifiers), on their ports", () => {
    for (const p of plans) {
      const policy = one(objects, "NetworkPolicy", p.name)
      expect(policy.spec.podSelector).toEqual({ matchLabels: { [nameLabel]: p.name } })
      expect(policy.spec.policyTypes).toEqual(["Ingress", "Egress"])
      const rules: Array<{ from: Array<any>; ports: Array<{ port: number; protocol: string }> }> = policy.spec.ingress
      const fromPods = rules.filter((r) => r.from.every((f) => f.podSelector))
      const sources = (port: number) =>
        sorted(
          fromPods
            .filter((r) => r.ports.some((x) => x.port === port))
            .flatMap((r) => r.from.map((f) => f.podSelector.matchLabels[nameLabel])),
        )
      // Callers (the functions depending on it) on every port; the functions that only fetch auth's signing keys
      // (AUTH_JWKS_URL: every function verifies access tokens) on the HTTP port.
      const tokenVerifiers = plans.filter((o) => o.peers.some((x) => x.dependency === p.name && x.path !== ""))
      if (p.ports.grpc) expect(sources(p.ports.grpc)).toEqual(sorted(p.callers))
      expect(sources(p.ports.http)).toEqual(sorted([...p.callers, ...tokenVerifiers.map((o) => o.name)]))
      if (tokenVerifiers.length === 0) {
        expect(sorted(fromPods.flatMap((r) => r.from.map((f) => f.podSelector.matchLabels[nameLabel])))).toEqual(
          sorted(p.callers),
        )
      }
      for (const rule of rules) expect(rule.ports.every((x) => portsOf(p).includes(x.port))).toBe(true)
      const fromNamespaces = rules.filter((r) => r.from.some((f) => f.namespaceSelector))
      expect(fromNamespaces).toEqual(
        p.public
          ? [
              {
                from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "ingress-nginx" } } }],
                ports: [{ protocol: "TCP", port: p.ports.http }],
              },
            ]
          : [],
      )

      // Egress: DNS, the functions it depends on (exactly the ports of its peer addresses), the data stores.
      const egress: Array<{ to: Array<any>; ports: Array<{ port: number; protocol: string }> }> = policy.spec.egress
      expect(egress[0]).toEqual({
        to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } } }],
        ports: [
          { protocol: "UDP", port: 53 },
          { protocol: "TCP", port: 53 },
        ],
      })
      const toPods = egress.filter((r) => r.to.every((t) => t.podSelector))
      expect(
        toPods.flatMap((r) => r.ports.map((x) => `${r.to[0].podSelector.matchLabels[nameLabel]}:${x.port}`)).sort(),
      ).toEqual(sorted(p.peers.map((peer) => `${peer.dependency}:${peer.port}`)))
      const stores = egress.filter((r) => r.to.some((t) => t.ipBlock))
      expect(stores).toHaveLength(1)
      expect(stores[0]!.to).toEqual([{ ipBlock: { cidr: "0.0.0.0/0" } }])
      const storePorts = stores[0]!.ports.map((x) => x.port)
      const keys = p.secrets.map((s) => s.key)
      expect(storePorts).toEqual(expect.arrayContaining([443, 6379, 9092]))
      expect(storePorts.includes(5432)).toBe(keys.includes("DATABASE_URL"))
      expect(storePorts.includes(587)).toBe(keys.includes("SMTP_URL"))

      // Every peer address it is given is allowed both ways: its egress and the peer's ingress.
      for (const peer of p.peers) {
        const theirs = one(objects, "NetworkPolicy", peer.dependency).spec.ingress as typeof rules
        expect(
          theirs.some(
            (r) =>
              r.from.some((f) => f.podSelector?.matchLabels[nameLabel] === p.name) &&
              r.ports.some((x) => x.port === peer.port),
          ),
          `${p.name} -> ${peer.key}`,
        ).toBe(true)
      }
    }
  })

  it("follows its options: namespace, images, pod network, ingress, settings", () => {
    expect(one(customObjects, "Namespace", "apps")).toBeTruthy()
    for (const o of customObjects.filter((o) => o.kind !== "Namespace")) expect(o.metadata.namespace).toBe("apps")
    for (const p of plans) {
      const deployment = one(customObjects, "Deployment", p.name)
      expect(deployment.spec.template.spec.containers[0].image).toBe(`registry.example.com/team/${p.name}:2.0.1`)
      for (const peer of p.peers) expect(envOf(deployment)[peer.key]).toContain(`.apps.svc`)
    }
    const shared = one(customObjects, "ConfigMap", "platform-config")
    expect(shared.data).toMatchObject({
      TRUSTED_PROXIES: "10.244.0.0/16,fd00::/8",
      KAFKA_BROKERS: "k1:9092,k2:9092",
      KAFKA_TOPIC_PREFIX: "staging.",
    })
    expect(one(customObjects, "ConfigMap", "identity-config").data.APP_BASE_URL).toBe("https://api.example.org")
    const ingress = customObjects.find((o) => o.kind === "Ingress")!
    expect(ingress.spec.ingressClassName).toBe("traefik")
    expect(ingress.spec.rules[0].host).toBe("api.example.org")
    const gateway = one(customObjects, "NetworkPolicy", plans.find((p) => p.public)!.name)
    expect(JSON.stringify(gateway.spec.ingress)).toContain(`{"kubernetes.io/metadata.name":"traefik"}`)
  })

  it("is documented: docs/deploy-kubernetes.md lists every secret and plain setting of the plan", () => {
    const docs = readFileSync(join(repo, "docs/deploy-kubernetes.md"), "utf8")
    const who = (holders: ReadonlyArray<FunctionPlan>) =>
      holders.length === plans.length ? "every function" : holders.map((p) => p.name).join(", ")
    const secretRows = sorted(plans.flatMap((p) => p.secrets.map((s) => s.key))).map((key) => {
      const holders = plans.filter((p) => p.secrets.some((s) => s.key === key))
      const spec = holders[0]!.secrets.find((s) => s.key === key)!
      return `| \`${key}\` | ${who(holders)} | ${spec.required ? "yes" : "no"} | ${spec.description} |`
    })
    const settingRows = [
      ...plainSettings.map((s) => `| \`${s.key}\` | every function | \`platform-config\` | ${s.description} |`),
      ...Object.entries(functionSettings).flatMap(([fn, list]) =>
        list.map((s) => `| \`${s.key}\` | ${fn} | \`${fn}-config\` | ${s.description} |`),
      ),
    ]
    const rows = (pattern: RegExp) => sorted(docs.split("\n").filter((line) => pattern.test(line)))
    expect(rows(/^\| `[A-Z0-9_]+` \| [^|]+ \| (yes|no) \|/)).toEqual(sorted(secretRows))
    expect(rows(/^\| `[A-Z0-9_]+` \| [^|]+ \| `[a-z0-9-]+-config` \|/)).toEqual(sorted(settingRows))
  })

  it("refuses bad options", async () => {
    const bad = [["--set", "NOPE=1"], ["--pod-cidr", "10.0.0.0/33"], ["--namespace", "Not_A_Label"], ["--bogus"]]
    const results = await Promise.all(
      bad.map((option) => run(process.execPath, ["scripts/k8s.ts", "--out", join(root, "bad"), ...option])),
    )
    expect(results.map((r) => [r.code, r.stderr.split("\n")[0]])).toEqual([
      [2, expect.stringMatching(/^k8s: --set NOPE=1: expected KEY=VALUE/)],
      [2, "k8s: --pod-cidr: 10.0.0.0/33 is not an address or a CIDR range"],
      [2, "k8s: --namespace Not_A_Label: not a DNS label"],
      [2, "k8s: Unknown option '--bogus'"],
    ])
    expect(existsSync(join(root, "bad"))).toBe(false)
  })

  it("builds with kustomize into the objects plus one Secret per function, referenced by its hashed name", () => {
    const secrets = built.filter((o) => o.kind === "Secret")
    expect(secrets).toHaveLength(plans.length)
    for (const p of plans) {
      const deployment = one(built, "Deployment", p.name)
      const name = deployment.spec.template.spec.containers[0].envFrom[0].secretRef.name
      expect(name).toMatch(new RegExp(`^${p.name}-secrets-[a-z0-9]{10}$`))
      const secret = one(secrets, "Secret", name)
      expect(secret.metadata.namespace).toBe("platform")
      expect(Object.keys(secret.data).sort()).toEqual(sorted(p.secrets.filter((s) => s.required).map((s) => s.key)))
    }
    expect(secrets.filter((s) => "KEY_ENCRYPTION_KEY" in s.data).map((s) => s.metadata.labels?.[nameLabel])).toEqual([
      "auth",
    ])
    expect(built.length).toBe(objects.length + plans.length)
  })

  it(`passes kubernetes-validate --strict (Kubernetes ${KUBERNETES_VERSION}), the files and the kustomize build`, async () => {
    const result = await run(kubernetesValidate, ["--strict", "-k", KUBERNETES_VERSION, ...files, builtFile])
    const passed = result.stdout.match(/^INFO .* passed /gm) ?? []
    console.log(`kubernetes-validate: exit ${result.code}, ${passed.length} resources passed`)
    expect(result.stderr + result.stdout.replace(/^INFO .* passed .*\n/gm, "")).toBe("")
    expect(result.code).toBe(0)
    expect(passed).toHaveLength(objects.length + built.length)
    // The validator is not vacuous: an unknown field fails in strict mode.
    const broken = join(root, "broken.yaml")
    writeFileSync(broken, readFileSync(join(dir, "auth.yaml"), "utf8").replace("minReplicas: 2", "minReplica: 2"))
    const refused = await run(kubernetesValidate, ["--strict", "-k", KUBERNETES_VERSION, broken])
    expect(refused.code).not.toBe(0)
    expect(refused.stdout).toMatch(/^ERROR .*'minReplica' was unexpected/m)
  })

  it("passes kube-score with warnings as failures", async () => {
    const args = [
      "score",
      "--kubernetes-version",
      `v${KUBERNETES_VERSION.split(".").slice(0, 2).join(".")}`,
      "--exit-one-on-warning",
      "--output-format",
      "ci",
      ...kubeScoreOptional.flatMap((test) => ["--enable-optional-test", test]),
      ...kubeScoreIgnored.flatMap(({ test }) => ["--ignore-test", test]),
    ]
    const result = await run(kubeScore, [...args, ...files])
    const counts = Object.entries(
      (result.stdout.match(/^\[[A-Z]+\]/gm) ?? []).reduce<Record<string, number>>(
        (n, tag) => Object.assign(n, { [tag]: (n[tag] ?? 0) + 1 }),
        {},
      ),
    )
    console.log(`kube-score: exit ${result.code}, ${counts.map(([tag, n]) => `${n} ${tag}`).join(", ")}`)
    expect(result.stdout.split("\n").filter((line) => /^\[(WARNING|CRITICAL)\]/.test(line))).toEqual([])
    expect(result.code).toBe(0)
    // Not vacuous: a `latest` image is refused.
    const latest = join(root, "latest.yaml")
    writeFileSync(latest, readFileSync(join(dir, "auth.yaml"), "utf8").replace(/image: (\S+):\S+/, "image: $1:latest"))
    const refused = await run(kubeScore, [...args, latest])
    expect(refused.code).not.toBe(0)
    expect(refused.stdout.split("\n").filter((line) => /^\[(WARNING|CRITICAL)\]/.test(line))).toEqual([
      "[CRITICAL] auth/platform apps/v1/Deployment: (auth) Image with latest tag",
    ])
  })
})
