// Renders the Kubernetes deployment of the platform into a directory that `kubectl apply -k <dir>` applies, derived
// from infra/deploy.ts (ports, peers, callers, secrets, settings of every function in the registry):
//   node scripts/k8s.ts [--out dist/k8s] [--image-prefix platform] [--tag <manifest version>] [--namespace platform]
//     [--pod-cidr 10.0.0.0/8] [--host platform.example.com] [--ingress-class nginx]
//     [--ingress-namespace ingress-nginx] [--set KEY=VALUE ...]
// Written: kustomization.yaml, namespace.yaml (the Namespace, Pod Security `restricted`, and a default-deny
// NetworkPolicy), config.yaml (ConfigMaps of the plain settings: `--set` values or CHANGE-ME placeholders),
// <function>.yaml (ServiceAccount, Deployment, Services, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy,
// and the Ingress of the public function) and secrets/<function>.env.example. No secret value is ever rendered: the
// kustomization's secretGenerator reads secrets/<function>.env, which the operator writes from the examples.
// See docs/deploy-kubernetes.md.
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { isIP } from "node:net"
import { join } from "node:path"
import { parseArgs } from "node:util"
import { type FunctionPlan, functionSettings, plainSettings, plan } from "../infra/deploy.ts"
import { grpcServiceName, httpServiceName } from "../shared/KubernetesNames.ts"

// The Services' names are the kubernetes service registry's too (SERVICE_REGISTRY=kubernetes): said once, there.
export { grpcServiceName, httpServiceName }

// ---------------------------------------------------------------- a small YAML writer

type Scalar = string | number | boolean | null
type Node = Scalar | Commented | ReadonlyArray<Node> | { readonly [key: string]: Node | undefined }

/** A mapping value written with a `# comment` line above its key. */
class Commented {
  readonly comment: string
  readonly value: Node
  constructor(comment: string, value: Node) {
    this.comment = comment
    this.value = value
  }
}

// Plain (unquoted) only when no YAML 1.1 reader can take it for anything but a string: booleans (yes, on, …), null,
// numbers, versions ("0.1.0" is a 1.1 float), dates and anything with YAML syntax in it are double-quoted (JSON).
const scalar = (value: Scalar): string => {
  if (typeof value !== "string") return JSON.stringify(value)
  const plain = // names, paths, URLs, quantities
    (/^[A-Za-z_/][A-Za-z0-9_./:-]*$/.test(value) && !value.endsWith(":")) || /^[0-9]+(m|[KMGT]i?)$/.test(value)
  return plain && !/^(y|yes|n|no|true|false|on|off|null)$/i.test(value) ? value : JSON.stringify(value)
}

const isEmpty = (node: Node) =>
  node !== null && typeof node === "object" && !(node instanceof Commented) && Object.keys(node).length === 0

const lines = (node: Node, indent: number): Array<string> => {
  const pad = " ".repeat(indent)
  if (node instanceof Commented) return lines(node.value, indent)
  if (Array.isArray(node)) {
    return node.flatMap((item: Node) => {
      if (item === null || typeof item !== "object" || isEmpty(item)) return [`${pad}- ${inline(item)}`]
      const [first = "", ...rest] = lines(item, indent + 2)
      return [`${pad}- ${first.slice(indent + 2)}`, ...rest]
    })
  }
  if (node === null || typeof node !== "object") return [`${pad}${scalar(node as Scalar)}`]
  return Object.entries(node as Record<string, Node | undefined>).flatMap(([key, value]): Array<string> => {
    if (value === undefined) return []
    const comment = value instanceof Commented ? value.comment.split("\n").map((line) => `${pad}# ${line}`) : []
    const inner = value instanceof Commented ? value.value : value
    if (inner === null || typeof inner !== "object" || isEmpty(inner))
      return [...comment, `${pad}${scalar(key)}: ${inline(inner)}`]
    return [...comment, `${pad}${scalar(key)}:`, ...lines(inner, indent + 2)]
  })
}

const inline = (node: Node): string =>
  Array.isArray(node) ? "[]" : node !== null && typeof node === "object" ? "{}" : scalar(node as Scalar)

/** A YAML file: header comment lines, then the documents separated by `---`. */
export const yamlFile = (header: ReadonlyArray<string>, docs: ReadonlyArray<Node>): string =>
  `${header.map((line) => `# ${line}`.trimEnd()).join("\n")}\n${docs.map((doc) => `${lines(doc, 0).join("\n")}\n`).join("---\n")}`

// ---------------------------------------------------------------- the render

export interface RenderOptions {
  readonly namespace: string
  readonly imagePrefix: string
  /** Image tag of every function; default: each function's manifest version. */
  readonly tag?: string | undefined
  /** TRUSTED_PROXIES: the pod network (the gateway and the ingress controller forward from there). */
  readonly podCidr: string
  readonly host: string
  readonly ingressClass: string
  /** The ingress controller's namespace (its `kubernetes.io/metadata.name` label). */
  readonly ingressNamespace: string
  /** Plain settings' values (`KAFKA_BROKERS`, `APP_BASE_URL`, …); the others are CHANGE-ME placeholders. */
  readonly settings: Readonly<Record<string, string>>
}

export const defaults: RenderOptions = {
  namespace: "platform",
  imagePrefix: "platform",
  podCidr: "10.0.0.0/8",
  host: "platform.example.com",
  ingressClass: "nginx",
  ingressNamespace: "ingress-nginx",
  settings: {},
}

export const PLACEHOLDER = "CHANGE-ME"
const PART_OF = "platform"
const SHARED_CONFIG = "platform-config"
export const secretName = (fn: string) => `${fn}-secrets`
export const configName = (fn: string) => `${fn}-config`

/**
 * Egress every function may need towards the data stores, by the setting that points at them (default ports): a
 * function gets the rule when it is given that setting. HTTPS (S3, OpenID Providers, OTLP collectors) is open to all.
 */
const storePorts: Readonly<Record<string, ReadonlyArray<number>>> = {
  DATABASE_URL: [5432],
  REDIS_URL: [6379],
  KAFKA_BROKERS: [9092],
  SMTP_URL: [465, 587],
}
const HTTPS = 443

const selector = (fn: string) => ({ "app.kubernetes.io/name": fn })
const labels = (fn: string) => ({ ...selector(fn), "app.kubernetes.io/part-of": PART_OF })
const meta = (name: string, o: RenderOptions, fn = name) => ({ name, namespace: o.namespace, labels: labels(fn) })
const tcp = (ports: ReadonlyArray<number>) => ports.map((port) => ({ protocol: "TCP", port }))

/** The ports `from` reaches on `to`, from its peer addresses (`<TO>_URL`, `<TO>_GRPC_URL`, `AUTH_JWKS_URL`). */
export const portsReached = (from: FunctionPlan, to: string): Array<number> =>
  [...new Set(from.peers.filter((p) => p.dependency === to).map((p) => p.port))].sort((a, b) => a - b)

/** A peer's address in the cluster: HTTP through the Service, gRPC through the headless Service (round_robin). */
export const peerValue = (peer: FunctionPlan["peers"][number], namespace: string) =>
  peer.http
    ? `http://${httpServiceName(peer.dependency)}.${namespace}.svc:${peer.port}${peer.path}`
    : `dns:///${grpcServiceName(peer.dependency)}.${namespace}.svc.cluster.local:${peer.port}`

const deployment = (p: FunctionPlan, o: RenderOptions, hasOwnConfig: boolean): Node => {
  const image = `${o.imagePrefix}/${p.name}:${o.tag ?? p.manifest.version}`
  const ports = [
    { name: "http", containerPort: p.ports.http, protocol: "TCP" },
    ...(p.ports.grpc ? [{ name: "grpc", containerPort: p.ports.grpc, protocol: "TCP" }] : []),
  ]
  const identity = {
    runAsNonRoot: true,
    runAsUser: 65532,
    runAsGroup: 65532,
    seccompProfile: { type: "RuntimeDefault" },
  }
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { ...meta(p.name, o), labels: { ...labels(p.name), "app.kubernetes.io/version": p.manifest.version } },
    spec: {
      // No `replicas`: the HorizontalPodAutoscaler owns the count (2..10); re-applying does not reset it.
      revisionHistoryLimit: 5,
      selector: { matchLabels: selector(p.name) },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: { ...labels(p.name), "app.kubernetes.io/version": p.manifest.version } },
        spec: {
          serviceAccountName: p.name,
          automountServiceAccountToken: false,
          // No `<SERVICE>_PORT=tcp://…` variables: the peers are given explicitly below.
          enableServiceLinks: false,
          terminationGracePeriodSeconds: 30,
          securityContext: { ...identity, fsGroup: 65532 },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: {
                    topologyKey: "kubernetes.io/hostname",
                    labelSelector: { matchLabels: selector(p.name) },
                  },
                },
              ],
            },
          },
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: "topology.kubernetes.io/zone",
              whenUnsatisfiable: "ScheduleAnyway",
              labelSelector: { matchLabels: selector(p.name) },
            },
          ],
          containers: [
            {
              name: p.name,
              image,
              // Versioned tags are never overwritten: a node reuses the image it has.
              imagePullPolicy: "IfNotPresent",
              ports,
              envFrom: [
                { secretRef: { name: secretName(p.name) } },
                { configMapRef: { name: SHARED_CONFIG } },
                ...(hasOwnConfig ? [{ configMapRef: { name: configName(p.name) } }] : []),
              ],
              env: [
                { name: "NODE_ENV", value: "production" },
                { name: "HTTP_PORT", value: String(p.ports.http) },
                ...(p.ports.grpc ? [{ name: "GRPC_PORT", value: String(p.ports.grpc) }] : []),
                // HTTP then gRPC drain, each within this budget: 2 × 10 s + the 5 s preStop pause < 30 s grace.
                { name: "SHUTDOWN_TIMEOUT_MS", value: "10000" },
                // The namespace for SERVICE_REGISTRY=kubernetes (no service account token, so no namespace file).
                { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
                ...p.peers.map((peer) => ({ name: peer.key, value: peerValue(peer, o.namespace) })),
              ],
              // Keep serving while endpoints and load balancers drop the pod (Kubernetes >= 1.30 sleep action).
              lifecycle: { preStop: { sleep: { seconds: 5 } } },
              readinessProbe: { httpGet: { path: "/readyz", port: "http" }, periodSeconds: 5, failureThreshold: 2 },
              livenessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 10, failureThreshold: 3 },
              startupProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 1, failureThreshold: 30 },
              resources: {
                requests: { cpu: "250m", memory: "256Mi", "ephemeral-storage": "64Mi" },
                limits: { cpu: "1", memory: "512Mi", "ephemeral-storage": "256Mi" },
              },
              securityContext: {
                ...identity,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                privileged: false,
                capabilities: { drop: ["ALL"] },
              },
              // The root filesystem is read-only; Node and libraries may still want a scratch directory.
              volumeMounts: [{ name: "tmp", mountPath: "/tmp" }],
            },
          ],
          volumes: [{ name: "tmp", emptyDir: { sizeLimit: "64Mi" } }],
        },
      },
    },
  }
}

const networkPolicy = (p: FunctionPlan, all: ReadonlyArray<FunctionPlan>, o: RenderOptions): Node => {
  // Ingress: every function whose peer addresses point here, on the ports they use (callers: HTTP and gRPC; the
  // functions verifying access tokens: auth's JWKS on HTTP); the public function from the ingress controller.
  const sources = all.filter((other) => other.name !== p.name && portsReached(other, p.name).length > 0)
  const ingress = [
    ...sources.map((other) => ({
      from: [{ podSelector: { matchLabels: selector(other.name) } }],
      ports: tcp(portsReached(other, p.name)),
    })),
    ...(p.public
      ? [
          {
            from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": o.ingressNamespace } } }],
            ports: tcp([p.ports.http]),
          },
        ]
      : []),
  ]
  const dependencies = [...new Set(p.peers.map((peer) => peer.dependency))]
  const settingKeys = [...p.secrets.map((s) => s.key), ...plainSettings.map((s) => s.key)]
  const stores = [...new Set([...settingKeys.flatMap((key) => storePorts[key] ?? []), HTTPS])].sort((a, b) => a - b)
  const egress = [
    {
      to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } } }],
      ports: [
        { protocol: "UDP", port: 53 },
        { protocol: "TCP", port: 53 },
      ],
    },
    ...dependencies.map((dep) => ({
      to: [{ podSelector: { matchLabels: selector(dep) } }],
      ports: tcp(portsReached(p, dep)),
    })),
    // The data stores live outside the namespace: any address, on their ports. Narrow to your stores' CIDRs.
    { to: [{ ipBlock: { cidr: "0.0.0.0/0" } }], ports: tcp(stores) },
  ]
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: meta(p.name, o),
    spec: { podSelector: { matchLabels: selector(p.name) }, policyTypes: ["Ingress", "Egress"], ingress, egress },
  }
}

const functionDocs = (p: FunctionPlan, all: ReadonlyArray<FunctionPlan>, o: RenderOptions): Array<Node> => [
  {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: meta(p.name, o),
    automountServiceAccountToken: false,
  },
  deployment(p, o, (functionSettings[p.name] ?? []).length > 0),
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: meta(httpServiceName(p.name), o, p.name),
    spec: {
      type: "ClusterIP",
      selector: selector(p.name),
      ports: [{ name: "http", port: p.ports.http, targetPort: "http", protocol: "TCP", appProtocol: "http" }],
    },
  },
  ...(p.ports.grpc
    ? [
        {
          apiVersion: "v1",
          kind: "Service",
          // Headless: DNS answers with every ready pod, and the gRPC clients spread calls over them (round_robin).
          metadata: meta(grpcServiceName(p.name), o, p.name),
          spec: {
            clusterIP: "None",
            selector: selector(p.name),
            ports: [{ name: "grpc", port: p.ports.grpc, targetPort: "grpc", protocol: "TCP", appProtocol: "grpc" }],
          },
        },
      ]
    : []),
  {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: meta(p.name, o),
    spec: { minAvailable: 1, selector: { matchLabels: selector(p.name) } },
  },
  {
    apiVersion: "autoscaling/v2",
    kind: "HorizontalPodAutoscaler",
    metadata: meta(p.name, o),
    spec: {
      scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: p.name },
      minReplicas: 2,
      maxReplicas: 10,
      metrics: [
        { type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: 70 } } },
      ],
    },
  },
  networkPolicy(p, all, o),
  ...(p.public
    ? [
        {
          apiVersion: "networking.k8s.io/v1",
          kind: "Ingress",
          metadata: meta(p.name, o),
          spec: {
            ingressClassName: o.ingressClass,
            // The certificate: a kubernetes.io/tls Secret of this name (kubectl create secret tls, cert-manager).
            tls: [{ hosts: [o.host], secretName: `${p.name}-tls` }],
            rules: [
              {
                host: o.host,
                http: {
                  paths: [
                    {
                      path: "/",
                      pathType: "Prefix",
                      backend: { service: { name: httpServiceName(p.name), port: { number: p.ports.http } } },
                    },
                  ],
                },
              },
            ],
          },
        },
      ]
    : []),
]

/** A plain setting as the plan declares it; one with a `default` is optional and rendered with it unless `--set`. */
type Setting = { readonly key: string; readonly description: string; readonly default?: string }

const configMap = (name: string, settings: ReadonlyArray<Setting>, o: RenderOptions) => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name, namespace: o.namespace, labels: { "app.kubernetes.io/part-of": PART_OF } },
  data: Object.fromEntries(
    settings.map((s) => {
      const value = s.key === "TRUSTED_PROXIES" ? o.podCidr : (o.settings[s.key] ?? s.default)
      return [
        s.key,
        new Commented(`${value === undefined ? `${PLACEHOLDER}: ` : ""}${s.description}`, value ?? PLACEHOLDER),
      ]
    }),
  ),
})

/** The example of a function's secrets file: each key with its description, required ones uncommented and empty. */
export const secretsExample = (p: FunctionPlan) =>
  [
    `# Secrets of ${p.name} only: copy to ${p.name}.env and fill in; kustomize makes the Secret ${secretName(p.name)}`,
    "# from it. One KEY=value a line, the value taken literally (no quotes, no spaces around =).",
    ...p.secrets.flatMap((s) => [
      "",
      `# ${s.required ? "required" : "optional"}: ${s.description}`,
      `${s.required ? "" : "# "}${s.key}=`,
    ]),
    "",
  ].join("\n")

/** Every file of the render, by path relative to the output directory. */
export const render = (options: RenderOptions, plans: ReadonlyArray<FunctionPlan> = plan()): Map<string, string> => {
  const o = options
  const generated = "Generated by scripts/k8s.ts from infra/deploy.ts: re-rendering overwrites this file."
  const files = new Map<string, string>()
  files.set(
    "namespace.yaml",
    yamlFile(
      [generated, "The namespace (Pod Security `restricted`) and its default: no traffic in or out of any pod."],
      [
        {
          apiVersion: "v1",
          kind: "Namespace",
          metadata: {
            name: o.namespace,
            labels: {
              "app.kubernetes.io/part-of": PART_OF,
              "pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest",
              "pod-security.kubernetes.io/audit": "restricted",
              "pod-security.kubernetes.io/audit-version": "latest",
              "pod-security.kubernetes.io/warn": "restricted",
              "pod-security.kubernetes.io/warn-version": "latest",
            },
          },
        },
        {
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: { name: "default-deny", namespace: o.namespace, labels: { "app.kubernetes.io/part-of": PART_OF } },
          spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
        },
      ],
    ),
  )
  const withSettings = plans.filter((p) => (functionSettings[p.name] ?? []).length > 0)
  files.set(
    "config.yaml",
    yamlFile(
      [
        generated,
        `Plain settings (no secrets). Replace every ${PLACEHOLDER} before applying, or render with --set KEY=VALUE.`,
        "Pods read them at start: `kubectl -n <namespace> rollout restart deployment` after a change.",
      ],
      [
        configMap(SHARED_CONFIG, plainSettings, o),
        ...withSettings.map((p) => configMap(configName(p.name), functionSettings[p.name] ?? [], o)),
      ],
    ),
  )
  for (const p of plans) {
    files.set(`${p.name}.yaml`, yamlFile([generated, `The function ${p.name}.`], functionDocs(p, plans, o)))
    files.set(`secrets/${p.name}.env.example`, secretsExample(p))
  }
  files.set("secrets/.gitignore", "# The operator's secrets files: never commit them.\n*.env\n")
  files.set(
    "kustomization.yaml",
    yamlFile(
      [
        generated,
        "Apply: write secrets/<function>.env from each secrets/<function>.env.example, replace the",
        `${PLACEHOLDER} values in config.yaml, then \`kubectl apply -k <this directory>\`.`,
      ],
      [
        {
          apiVersion: "kustomize.config.k8s.io/v1beta1",
          kind: "Kustomization",
          resources: ["namespace.yaml", "config.yaml", ...plans.map((p) => `${p.name}.yaml`)],
          // Each function gets its own Secret, named with a hash of its content: a change rolls its pods.
          secretGenerator: plans.map((p) => ({
            name: secretName(p.name),
            namespace: o.namespace,
            type: "Opaque",
            envs: [`secrets/${p.name}.env`],
            options: { labels: labels(p.name) },
          })),
        },
      ],
    ),
  )
  return files
}

// ---------------------------------------------------------------- the command

const fail = (message: string): never => {
  process.stderr.write(`k8s: ${message}\n`)
  process.exit(2)
}

const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/

/** The options of a command line, checked. */
export const parseOptions = (args: ReadonlyArray<string>): RenderOptions & { readonly out: string } => {
  const parse = () =>
    parseArgs({
      args: [...args],
      options: {
        out: { type: "string", default: "dist/k8s" },
        "image-prefix": { type: "string", default: defaults.imagePrefix },
        tag: { type: "string" },
        namespace: { type: "string", default: defaults.namespace },
        "pod-cidr": { type: "string", default: defaults.podCidr },
        host: { type: "string", default: defaults.host },
        "ingress-class": { type: "string", default: defaults.ingressClass },
        "ingress-namespace": { type: "string", default: defaults.ingressNamespace },
        set: { type: "string", multiple: true, default: [] },
      },
      strict: true,
      allowPositionals: false,
    })
  let values: ReturnType<typeof parse>["values"]
  try {
    values = parse().values
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error))
  }
  const namespace = values.namespace
  if (!dnsLabel.test(namespace) || namespace.length > 63) fail(`--namespace ${namespace}: not a DNS label`)
  if (!dnsLabel.test(values["ingress-namespace"])) fail(`--ingress-namespace: not a DNS label`)
  for (const entry of values["pod-cidr"].split(",").map((e) => e.trim())) {
    const [address = "", prefix, ...rest] = entry.split("/")
    const bits = isIP(address) === 4 ? 32 : isIP(address) === 6 ? 128 : 0
    const ok = bits > 0 && rest.length === 0 && (prefix === undefined || (/^\d+$/.test(prefix) && +prefix <= bits))
    if (!ok) fail(`--pod-cidr: ${entry} is not an address or a CIDR range`)
  }
  if (values.tag !== undefined && !/^[\w][\w.-]{0,127}$/.test(values.tag)) fail(`--tag ${values.tag}: not an image tag`)
  const known = new Set([...plainSettings, ...Object.values(functionSettings).flat()].map((s) => s.key))
  const settings: Record<string, string> = {}
  for (const pair of values.set) {
    const at = pair.indexOf("=")
    const key = pair.slice(0, at)
    if (at < 1 || !known.has(key)) fail(`--set ${pair}: expected KEY=VALUE, KEY one of ${[...known].join(", ")}`)
    if (key === "TRUSTED_PROXIES") fail("--set TRUSTED_PROXIES: use --pod-cidr")
    settings[key] = pair.slice(at + 1)
  }
  return {
    out: values.out,
    namespace,
    imagePrefix: values["image-prefix"],
    tag: values.tag,
    podCidr: values["pod-cidr"],
    host: values.host,
    ingressClass: values["ingress-class"],
    ingressNamespace: values["ingress-namespace"],
    settings,
  }
}

if (import.meta.main) {
  const { out, ...options } = parseOptions(process.argv.slice(2))
  const files = render(options)
  for (const [path, text] of files) {
    mkdirSync(join(out, path, ".."), { recursive: true })
    writeFileSync(join(out, path), text)
  }
  const missing = [...files.keys()]
    .filter((path) => path.endsWith(".env.example"))
    .map((path) => path.slice(0, -".example".length))
    .filter((path) => !existsSync(join(out, path)))
  const placeholders = [...plainSettings, ...Object.values(functionSettings).flat()]
    .filter((s: Setting) => s.default === undefined)
    .map((s) => s.key)
    .filter((key) => key !== "TRUSTED_PROXIES" && options.settings[key] === undefined)
  process.stderr.write(
    `k8s: wrote ${files.size} files to ${out}\n` +
      (placeholders.length > 0 ? `k8s: ${PLACEHOLDER} in config.yaml: ${placeholders.join(", ")}\n` : "") +
      (missing.length > 0 ? `k8s: still to write from the examples: ${missing.join(", ")}\n` : "") +
      `k8s: then kubectl apply -k ${out}\n`,
  )
}
