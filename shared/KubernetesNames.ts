// The names of a function's Services in the Kubernetes render (scripts/k8s.ts names its objects with these) and the
// addresses the kubernetes registry derives from them: said once, here, for the render and the running functions.

/** The ClusterIP Service of a function's HTTP port. */
export const httpServiceName = (fn: string) => fn

/** The headless Service of a function's gRPC port (DNS answers with every ready pod). */
export const grpcServiceName = (fn: string) => `${fn}-grpc`

/** Where a namespace's Services are found: `<namespace>.svc.<cluster domain>`. */
export interface ClusterDns {
  readonly namespace: string
  readonly clusterDomain: string
}

/** A function's HTTP origin in the cluster: its ClusterIP Service. */
export const httpOrigin = (dns: ClusterDns, fn: string, port: number) =>
  `http://${httpServiceName(fn)}.${dns.namespace}.svc.${dns.clusterDomain}:${port}`

/** A function's gRPC target in the cluster: its headless Service through grpc-js's DNS resolver (every pod's IP). */
export const grpcTarget = (dns: ClusterDns, fn: string, port: number) =>
  `dns:///${grpcServiceName(fn)}.${dns.namespace}.svc.${dns.clusterDomain}:${port}`
