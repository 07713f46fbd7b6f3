// grpc-js name resolution for `etcd://` targets (SERVICE_REGISTRY=etcd): every live instance's gRPC address, kept
// current from an etcd watch, handed to the channel's load balancer (round_robin, see GrpcClient.ts).
import * as grpc from "@grpc/grpc-js"
import { acquireClient, InstanceWatch, parseTarget, servicesKey } from "./EtcdRegistry.ts"

const hostPort = (address: string) => {
  const colon = address.lastIndexOf(":")
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ""), port: Number(address.slice(colon + 1)) }
}

class EtcdResolver implements grpc.experimental.Resolver {
  private watch: Promise<InstanceWatch> | undefined
  private release: (() => void) | undefined
  private stop: (() => void) | undefined

  private readonly target: grpc.experimental.GrpcUri
  private readonly listener: grpc.experimental.ResolverListener

  constructor(target: grpc.experimental.GrpcUri, listener: grpc.experimental.ResolverListener) {
    this.target = target
    this.listener = listener
  }

  static getDefaultAuthority(target: grpc.experimental.GrpcUri) {
    return parseTarget(target).name
  }

  // The watch reports every change itself: a channel asking again (its subchannels failing) gets no extra report, or
  // it would ask again at once, in a loop.
  updateResolution() {
    if (this.watch !== undefined) return
    const { endpoints, prefix, name } = parseTarget(this.target)
    const { client, release } = acquireClient(endpoints)
    this.release = release
    const watch = client.then((etcd) => InstanceWatch.open(etcd, servicesKey(prefix, name)))
    this.watch = watch
    watch.then(
      (opened) => {
        if (this.watch !== watch) return void opened.close()
        this.stop = opened.subscribe((instances) => this.report(instances))
        this.report(opened.instances)
      },
      (error: unknown) => {
        if (this.watch !== watch) return
        // Asked again later by the channel (its reconnect backoff): start over then.
        this.watch = undefined
        this.release?.()
        this.listener(
          grpc.experimental.statusOrFromError({
            code: grpc.status.UNAVAILABLE,
            details: `etcd: ${error instanceof Error ? error.message : String(error)}`,
          }),
          {},
          null,
          "",
        )
      },
    )
  }

  destroy() {
    const watch = this.watch
    this.watch = undefined
    this.stop?.()
    if (watch !== undefined)
      void watch.then(
        (opened) => opened.close(),
        () => {},
      )
    this.release?.()
  }

  // Every live instance with a gRPC address; none: UNAVAILABLE, so calls fail at once instead of waiting.
  private report(instances: ReadonlyArray<{ readonly grpc?: string | undefined }>) {
    const addresses = instances.flatMap((i) => (i.grpc === undefined ? [] : [hostPort(i.grpc)]))
    const { name } = parseTarget(this.target)
    const result: grpc.experimental.StatusOr<Array<grpc.experimental.Endpoint>> =
      addresses.length === 0
        ? grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: `no live instance of ${name}` })
        : grpc.experimental.statusOrFromValue<Array<grpc.experimental.Endpoint>>(
            addresses.map((address) => ({ addresses: [address] })),
          )
    queueMicrotask(() => this.listener(result, {}, null, ""))
  }
}

let installed = false

/** Registers the `etcd` scheme with grpc-js (once per process). */
export const install = () => {
  if (installed) return
  installed = true
  grpc.experimental.registerResolver("etcd", EtcdResolver)
}
