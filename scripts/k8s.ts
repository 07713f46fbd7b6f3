// Renders Kubernetes manifests for every function from its module.ts: a Deployment (probes on /healthz and
// /readyz, SIGTERM drain within terminationGracePeriodSeconds, non-root, read-only root filesystem) and a
// Service exposing the HTTP and gRPC ports. `node scripts/k8s.ts [--image-prefix registry/platform] > k8s.yaml`
import { existsSync, readdirSync } from "node:fs"
import { parseArgs } from "node:util"
import { type ModuleManifest, peerAddresses } from "../shared/Module.ts"

const { values } = parseArgs({
  options: {
    "image-prefix": { type: "string", default: "platform" },
    tag: { type: "string", default: "latest" },
    namespace: { type: "string", default: "platform" },
  },
})

/** Where a function finds the others: `<DEP>_URL`, `<DEP>_GRPC_URL` and `AUTH_JWKS_URL` (see `peerAddresses`). */
const peerEnv = (m: ModuleManifest, all: ReadonlyArray<ModuleManifest>, host: (name: string) => string) =>
  peerAddresses(m, all).map((peer) => ({
    name: peer.key,
    value: `${peer.http ? "http://" : ""}${host(peer.dependency)}:${peer.port}${peer.path}`,
  }))

/** The YAML documents for one function. */
export const render = (
  m: ModuleManifest,
  image: string,
  namespace: string,
  all: ReadonlyArray<ModuleManifest> = [],
): string => {
  const peers = peerEnv(m, all, (name) => `${name}.${namespace}.svc`)
  const ports = [{ name: "http", port: m.ports.http }, ...(m.ports.grpc ? [{ name: "grpc", port: m.ports.grpc }] : [])]
  const labels = `app.kubernetes.io/name: ${m.name}\n        app.kubernetes.io/part-of: platform`
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${m.name}
  namespace: ${namespace}
  labels:
    app.kubernetes.io/name: ${m.name}
    app.kubernetes.io/version: "${m.version}"
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: ${m.name}
  template:
    metadata:
      labels:
        ${labels}
    spec:
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
      containers:
        - name: ${m.name}
          image: ${image}
          ports:
${ports.map((p) => `            - name: ${p.name}\n              containerPort: ${p.port}`).join("\n")}
          envFrom:
            - secretRef:
                name: platform-env
          env:
            - name: NODE_ENV
              value: production
            # HTTP then gRPC drain, each within this budget: 2 × 10 s + the 5 s preStop pause < 30 s grace.
            - name: SHUTDOWN_TIMEOUT_MS
              value: "10000"
${peers.map((p) => `            - name: ${p.name}\n              value: ${p.value}\n`).join("")}          lifecycle:
            # Keep serving while endpoints and load balancers drop the pod (Kubernetes >= 1.30 sleep action).
            preStop:
              sleep: { seconds: 5 }
          readinessProbe:
            httpGet: { path: /readyz, port: http }
            periodSeconds: 5
            failureThreshold: 2
          livenessProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 10
            failureThreshold: 3
          startupProbe:
            httpGet: { path: /healthz, port: http }
            periodSeconds: 1
            failureThreshold: 30
          resources:
            requests: { cpu: 100m, memory: 128Mi }
            limits: { memory: 512Mi }
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: { drop: [ALL] }
---
apiVersion: v1
kind: Service
metadata:
  name: ${m.name}
  namespace: ${namespace}
spec:
  selector:
    app.kubernetes.io/name: ${m.name}
  ports:
${ports.map((p) => `    - name: ${p.name}\n      port: ${p.port}\n      targetPort: ${p.name}${p.name === "grpc" ? "\n      appProtocol: grpc" : ""}`).join("\n")}
`
}

const names = readdirSync("functions").filter((n) => existsSync(`functions/${n}/module.ts`))
const manifests: Array<ModuleManifest> = []
for (const name of names) {
  manifests.push(((await import(`../functions/${name}/module.ts`)) as { manifest: ModuleManifest }).manifest)
}
const docs = manifests.map((manifest) =>
  render(manifest, `${values["image-prefix"]}/${manifest.name}:${values.tag}`, values.namespace!, manifests),
)
process.stdout.write(docs.join("---\n"))
