import * as grpc from "@grpc/grpc-js"
import { Duration, Effect, Exit, Metric, type Scope } from "effect"
import { HttpTraceContext } from "effect/http"
import * as Backoff from "./Backoff.ts"
import * as Grpc from "./Grpc.ts"
import { auditFields } from "./RequestContext.ts"
import { ServiceIdentity } from "./ServiceIdentity.ts"

/** A ts-proto generated grpc-js client constructor, such as `IdentityServiceClient`. */
export interface ClientConstructor<D extends Grpc.ServiceDefinition> {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>): grpc.Client
  readonly service: D
  readonly serviceName: string
}

/** Where a client connects and how it behaves by default. */
export interface GrpcClientOptions {
  /** `host:port`, `dns:///host:port` or `etcd://…/name` of the service (from the service registry). */
  readonly address: string
  /** The function serving it (the audience of the service token); default: the proto package's first segment. */
  readonly callee?: string
  /** Deadline of each attempt unless the call says otherwise. Default 5 s. */
  readonly timeoutMs?: number
  /** Retries of an idempotent call on UNAVAILABLE / DEADLINE_EXCEEDED. Default 3. */
  readonly retries?: number
  /** First retry delay; doubles each retry, with jitter. Default 100 ms. */
  readonly retryDelayMs?: number
  /** Extra grpc-js channel options. */
  readonly channelOptions?: Partial<grpc.ChannelOptions>
}

/** Per-call options. */
export interface CallOptions {
  /** Safe to send twice: enables retries with backoff on UNAVAILABLE / DEADLINE_EXCEEDED. */
  readonly idempotent?: boolean
  /** Deadline of each attempt for this call. */
  readonly timeoutMs?: number
}

/** Effect calls to one gRPC service. */
export interface GrpcClient<D extends Grpc.ServiceDefinition> {
  /** Fully qualified service name, e.g. `identity.v1.IdentityService`. */
  readonly service: string
  /** Calls a unary method with a deadline; failures come back as the platform's typed errors. */
  call<M extends Grpc.UnaryMethod<D>>(
    method: M,
    request: Grpc.RequestOf<D[M]>,
    options?: CallOptions,
  ): Effect.Effect<Grpc.ResponseOf<D[M]>, Grpc.GrpcFailure>
}

const requests = Metric.counter("grpc_client_requests_total", { description: "gRPC call attempts made" })
const duration = Metric.histogram("grpc_client_request_duration_seconds", {
  description: "gRPC call attempt duration",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
})

// In-cluster peers restart in seconds: reconnect quickly instead of grpc-js's 1 s..120 s backoff, at most 1 s apart
// (a channel in backoff fails calls at once, so a peer back from a restart would still be refused for the rest of a
// longer wait; a reconnect attempt a second to a peer that is down costs nothing). Calls are spread
// over every address the name resolves to (round_robin): with a headless Kubernetes Service and a `dns:///` address,
// each pod of the callee gets its share instead of one long-lived HTTP/2 connection pinning one pod.
const defaultChannelOptions: Partial<grpc.ChannelOptions> = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1_000,
  "grpc.keepalive_time_ms": 30_000,
  "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
}

const retryable = (error: grpc.ServiceError) =>
  error.code === grpc.status.UNAVAILABLE || error.code === grpc.status.DEADLINE_EXCEEDED

// The status an attempt ended with; an interrupted attempt counts as CANCELLED.
const codeOf = (exit: Exit.Exit<unknown, grpc.ServiceError>): grpc.status => {
  if (Exit.isSuccess(exit)) return grpc.status.OK
  const error = Exit.findErrorOption(exit)
  return error._tag === "Some" ? error.value.code : grpc.status.CANCELLED
}

/**
 * Opens a channel to a service (closed with the scope) and returns Effect calls over its unary methods. Every call
 * carries this function's service token for the callee (`ServiceIdentity`).
 */
export const make = <D extends Grpc.ServiceDefinition>(
  ctor: ClientConstructor<D>,
  options: GrpcClientOptions,
): Effect.Effect<GrpcClient<D>, never, Scope.Scope | ServiceIdentity> =>
  Effect.gen(function* () {
    const identity = yield* ServiceIdentity
    // An `etcd://` address (SERVICE_REGISTRY=etcd) needs its resolver registered with grpc-js before the channel.
    if (options.address.startsWith("etcd:")) {
      yield* Effect.promise(() => import("./EtcdResolver.ts").then((resolver) => resolver.install()))
    }
    const client = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new ctor(options.address, grpc.credentials.createInsecure(), {
            ...defaultChannelOptions,
            ...options.channelOptions,
          }),
      ),
      (client) => Effect.sync(() => client.close()),
    )
    const service = Grpc.serviceName(ctor.service)
    const callee = options.callee ?? service.split(".")[0]!
    const schedule = Backoff.exponential({ base: Duration.millis(options.retryDelayMs ?? 100), jitter: true })

    const call = <M extends Grpc.UnaryMethod<D>>(
      method: M,
      request: Grpc.RequestOf<D[M]>,
      callOptions?: CallOptions,
    ): Effect.Effect<Grpc.ResponseOf<D[M]>, Grpc.GrpcFailure> => {
      type Res = Grpc.ResponseOf<D[M]>
      const definition = ctor.service[method] as Grpc.MethodDefinition<Grpc.RequestOf<D[M]>, Res>
      const rpc = definition.path.split("/")[2]!
      const fullMethod = `${service}/${rpc}`
      const labels = { service, method: rpc }
      const timeoutMs = callOptions?.timeoutMs ?? options.timeoutMs ?? 5_000

      const attempt = (metadata: grpc.Metadata, inherited: number | undefined) =>
        Effect.suspend(() => {
          const started = performance.now()
          return Effect.callback<Res, grpc.ServiceError>((resume) => {
            const deadline = Math.min(Date.now() + timeoutMs, inherited ?? Number.POSITIVE_INFINITY)
            const pending = client.makeUnaryRequest(
              definition.path,
              definition.requestSerialize,
              definition.responseDeserialize,
              request,
              metadata,
              { deadline },
              (error, response) => resume(error ? Effect.fail(error) : Effect.succeed(response as Res)),
            )
            return Effect.sync(() => pending.cancel())
          }).pipe(
            Effect.onExit((exit) =>
              Effect.andThen(
                Metric.update(Metric.withAttributes(requests, { ...labels, code: Grpc.statusName(codeOf(exit)) }), 1),
                Metric.update(Metric.withAttributes(duration, labels), (performance.now() - started) / 1000),
              ),
            ),
          )
        })

      return Effect.gen(function* () {
        const metadata = new grpc.Metadata()
        // Who, from where, in which request: the work in progress's audit fields travel with the call.
        const { requestId, ip, actor } = yield* auditFields
        if (requestId !== null) metadata.set(Grpc.REQUEST_ID, requestId)
        metadata.set(Grpc.CALLER, identity.name)
        metadata.set(Grpc.AUTHORIZATION, `Bearer ${yield* identity.token(callee)}`)
        if (ip !== null) metadata.set(Grpc.CLIENT_IP, ip)
        if (actor !== null) metadata.set(Grpc.ACTOR, actor)
        const span = yield* Effect.option(Effect.currentSpan)
        if (span._tag === "Some") metadata.set(Grpc.TRACEPARENT, HttpTraceContext.toHeaders(span.value).traceparent!)
        const inherited = yield* Grpc.CallDeadline
        const once = attempt(metadata, inherited)
        if (!callOptions?.idempotent) return yield* once
        return yield* Effect.retry(once, {
          schedule,
          times: options.retries ?? 3,
          while: (error) => retryable(error) && (inherited === undefined || Date.now() < inherited),
        })
      }).pipe(
        Effect.onExit((exit) => Effect.annotateCurrentSpan("rpc.grpc.status_code", codeOf(exit))),
        Effect.mapError((error) => Grpc.fromServiceError(error, fullMethod)),
        Effect.withSpan(`Grpc.${fullMethod}`, {
          kind: "client",
          attributes: {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": rpc,
            "server.address": options.address,
          },
        }),
      )
    }

    return { service, call }
  })
