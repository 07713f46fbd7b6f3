import { randomUUID } from "node:crypto"
import * as grpc from "@grpc/grpc-js"
import { Cause, Context, Effect, Exit, Fiber, Layer, Metric, Option, Schema } from "effect"
import { Headers, HttpTraceContext } from "effect/http"
import {
  type HealthCheckRequest,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthService,
} from "../proto/gen/grpc/health/v1/health.ts"
import { ErrorBus } from "./ErrorBus.ts"
import * as Grpc from "./Grpc.ts"
import { NUL_MESSAGE, nulField } from "./NulText.ts"
import * as Problem from "./Problem.ts"
import { Actor, ClientIp, isSaneId, RequestId } from "./RequestContext.ts"
import { ServiceIdentity } from "./ServiceIdentity.ts"

/** What a handler knows about the call it serves, besides the request message. */
export interface GrpcCall {
  /** Fully qualified service name, e.g. `identity.v1.IdentityService`. */
  readonly service: string
  /** Method name as in the proto, e.g. `GetUser`. */
  readonly method: string
  /** The caller's `x-request-id`, or a fresh one; also annotated on every log line as request_id. */
  readonly requestId: string
  /** The calling function, verified from its service token (see `ServiceIdentity`). */
  readonly caller: string
  /** The call's deadline (epoch ms), when the client set one. */
  readonly deadline: number | undefined
  /** The raw request metadata. */
  readonly metadata: grpc.Metadata
  /** The peer address. */
  readonly peer: string
}

/** A unary handler: request in, Effect of the response out; failures are mapped to gRPC statuses. */
export type Handler<Req, Res, R> = (request: Req, call: GrpcCall) => Effect.Effect<Res, unknown, R>

/** One handler per unary method of a ts-proto service definition. */
export type Handlers<D, R> = {
  readonly [K in Grpc.UnaryMethod<D>]: Handler<Grpc.RequestOf<D[K]>, Grpc.ResponseOf<D[K]>, R>
}

/** A service implementation ready to be served: its definition and Effect handlers. */
export interface GrpcService<out R> {
  readonly name: string
  readonly definition: Grpc.ServiceDefinition
  readonly handlers: { readonly [method: string]: Handler<any, any, R> }
}

/** The services the handlers of a `Handlers` object require. */
export type HandlersContext<H> = {
  [K in keyof H]: H[K] extends (...args: any) => Effect.Effect<any, any, infer R> ? R : never
}[keyof H]

/** Pairs a ts-proto service definition with Effect handlers for its unary methods. */
export const service = <D extends Grpc.ServiceDefinition, H extends Handlers<D, any>>(
  definition: D,
  handlers: H,
): GrpcService<HandlersContext<H>> => ({
  name: Grpc.serviceName(definition),
  definition,
  handlers: handlers as unknown as GrpcService<HandlersContext<H>>["handlers"],
})

/** Where and what a gRPC server serves. */
export interface GrpcServerOptions<R> {
  /** Port to listen on; 0 picks a free one (read it back from `GrpcServer.port`). */
  readonly port: number
  /** Interface to bind; "0.0.0.0" (default) in containers, "127.0.0.1" for local-only. */
  readonly host?: string
  readonly services: ReadonlyArray<GrpcService<R>>
  /** How long shutdown waits for in-flight calls before cancelling them. Default 10 s. */
  readonly shutdownTimeoutMs?: number
  /** Extra grpc-js server options (message sizes, keepalive). */
  readonly serverOptions?: grpc.ServerOptions
}

/** Serving status reported by the standard grpc.health.v1 service. */
export type ServingStatus = "SERVING" | "NOT_SERVING"

/** The server failed to start (port taken, bad address). */
export class GrpcServerError extends Schema.TaggedError<GrpcServerError>()("GrpcServerError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

const requests = Metric.counter("grpc_server_requests_total", { description: "gRPC calls served" })
const duration = Metric.histogram("grpc_server_request_duration_seconds", {
  description: "gRPC call duration",
  boundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
})

// Same rule as HTTP: a caller's id (and the forwarded address, actor) is kept only when it is a short, plain token.
const sane = (value: string | undefined) => (isSaneId(value) ? value : undefined)

const deadlineOf = (deadline: grpc.Deadline): number | undefined => {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline
  return Number.isFinite(ms) ? ms : undefined
}

/** A running gRPC server: its bound port and the statuses its health service reports. */
export class GrpcServer extends Context.Service<
  GrpcServer,
  {
    /** The port actually bound (useful with port 0). */
    readonly port: number
    /** Sets the health status of one service ("" is the whole server). */
    setStatus(service: string, status: ServingStatus): Effect.Effect<void>
  }
>()("shared/GrpcServer") {
  /**
   * Starts the server with the given services plus grpc.health.v1; drains in-flight calls when the scope closes.
   * Every call to the services must carry a service token of a function allowed to call this one (`ServiceIdentity`):
   * none or a bad one is UNAUTHENTICATED, a genuine function that does not depend on this one PERMISSION_DENIED.
   * The health service stays open (probes carry no identity).
   */
  static readonly layer = <R>(
    options: GrpcServerOptions<R>,
  ): Layer.Layer<GrpcServer, GrpcServerError, R | ServiceIdentity> => Layer.effect(GrpcServer, make(options))
}

const BEARER = /^Bearer[ ]+(\S+)$/i

const refuseNul = (request: unknown) => {
  const field = nulField(request)
  return field === undefined
    ? Effect.void
    : Effect.fail(
        new Problem.ValidationFailed({
          detail: "The request does not match the API contract",
          errors: [{ path: field, message: NUL_MESSAGE }],
        }),
      )
}

/** Builds and starts the server in the current scope (see `GrpcServer.layer`). */
export const make = Effect.fnUntraced(function* <R>(options: GrpcServerOptions<R>) {
  const context = yield* Effect.context<R>()
  const identity = yield* ServiceIdentity
  const errors = yield* ErrorBus
  const run = Effect.runForkWith(context)
  const inFlight = new Set<Fiber.Fiber<void>>()
  const statuses = new Map<string, ServingStatus>([["", "SERVING"]])
  const watchers = new Map<string, Set<grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>>()
  for (const s of options.services) statuses.set(s.name, "SERVING")

  const wire = (status: ServingStatus | undefined): HealthCheckResponse => ({
    status:
      status === undefined
        ? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN
        : status === "SERVING"
          ? HealthCheckResponse_ServingStatus.SERVING
          : HealthCheckResponse_ServingStatus.NOT_SERVING,
  })

  const setStatusUnsafe = (name: string, status: ServingStatus) => {
    statuses.set(name, status)
    for (const watcher of watchers.get(name) ?? []) watcher.write(wire(status))
  }

  const health: grpc.UntypedServiceImplementation = {
    check: (
      call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: grpc.sendUnaryData<HealthCheckResponse>,
    ) => {
      const status = statuses.get(call.request.service)
      if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: "unknown service" })
      else callback(null, wire(status))
    },
    // Sends the current status, then every change, until the client goes away or the server shuts down.
    watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
      const name = call.request.service
      const set = watchers.get(name) ?? new Set()
      watchers.set(name, set)
      set.add(call)
      call.on("cancelled", () => set.delete(call))
      call.write(wire(statuses.get(name)))
    },
  }

  const unary = (
    svc: GrpcService<R>,
    method: string,
    handler: Handler<any, any, R>,
  ): grpc.handleUnaryCall<any, any> => {
    const spanName = `Grpc.${svc.name}/${method}`
    const labels = { service: svc.name, method }
    return (call, callback) => {
      const started = performance.now()
      const requestId = sane(Grpc.metadataString(call.metadata, Grpc.REQUEST_ID)) ?? randomUUID()
      const declared = sane(Grpc.metadataString(call.metadata, Grpc.CALLER))
      const deadline = deadlineOf(call.getDeadline())
      const traceparent = Grpc.metadataString(call.metadata, Grpc.TRACEPARENT)
      const parent = traceparent
        ? Option.getOrUndefined(HttpTraceContext.fromHeaders(Headers.fromRecordUnsafe({ traceparent })))
        : undefined
      const token = BEARER.exec(Grpc.metadataString(call.metadata, Grpc.AUTHORIZATION) ?? "")?.[1]
      let responded = false
      const record = (code: grpc.status) =>
        Effect.andThen(
          Metric.update(Metric.withAttributes(requests, { ...labels, code: Grpc.statusName(code) }), 1),
          Metric.update(Metric.withAttributes(duration, labels), (performance.now() - started) / 1000),
        )
      // Zero trust: the caller proves who it is before any handler runs.
      const program = Effect.flatMap(identity.verify(token), (caller) =>
        // No NUL characters in any text (see NulText): INVALID_ARGUMENT before any handler.
        Effect.andThen(refuseNul(call.request), () =>
          Effect.annotateLogs(
            handler(call.request, {
              service: svc.name,
              method,
              requestId,
              caller,
              deadline,
              metadata: call.metadata,
              peer: call.getPeer(),
            }),
            { caller },
          ),
        ),
      ).pipe(
        Effect.onExit((exit) => {
          if (Exit.isSuccess(exit)) return Effect.annotateCurrentSpan("rpc.grpc.status_code", grpc.status.OK)
          const status = Grpc.failureStatus(exit.cause)
          const annotated = Effect.annotateCurrentSpan("rpc.grpc.status_code", status.code)
          // The server's fault (INTERNAL) goes to the error bus here, inside the call's span (its trace and span ids).
          return status.unexpected && !call.cancelled && !Cause.hasInterruptsOnly(exit.cause)
            ? Effect.andThen(
                annotated,
                errors.capture({ cause: exit.cause, origin: "grpc", route: `${svc.name}/${method}` }),
              )
            : annotated
        }),
        Effect.withSpan(spanName, {
          kind: "server",
          ...(parent ? { parent } : { root: true }),
          attributes: {
            "rpc.system": "grpc",
            "rpc.service": svc.name,
            "rpc.method": method,
            ...(declared ? { "rpc.caller": declared } : {}),
          },
        }),
        Effect.exit,
        Effect.flatMap((exit) => {
          if (Exit.isSuccess(exit)) {
            return Effect.andThen(
              record(grpc.status.OK),
              Effect.sync(() => {
                responded = true
                callback(null, exit.value)
              }),
            )
          }
          if (call.cancelled || Cause.hasInterruptsOnly(exit.cause)) {
            const expired = deadline !== undefined && Date.now() >= deadline
            return record(expired ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED)
          }
          const status = Grpc.failureStatus(exit.cause)
          return Effect.gen(function* () {
            if (status.unexpected) yield* Effect.logError(`gRPC ${svc.name}/${method} failed`, exit.cause)
            yield* record(status.code)
            responded = true
            callback({ code: status.code, details: status.details, metadata: status.metadata })
          })
        }),
        Effect.provideService(RequestId, requestId),
        Effect.provideService(ClientIp, sane(Grpc.metadataString(call.metadata, Grpc.CLIENT_IP)) ?? ""),
        Effect.provideService(Actor, sane(Grpc.metadataString(call.metadata, Grpc.ACTOR)) ?? ""),
        Effect.provideService(Grpc.CallDeadline, deadline),
        Effect.annotateLogs({ request_id: requestId, rpc: `${svc.name}/${method}` }),
      )
      const fiber = run(program)
      inFlight.add(fiber)
      fiber.addObserver(() => inFlight.delete(fiber))
      // grpc-js emits "cancelled" on client cancel, deadline expiry and also after our own reply.
      call.on("cancelled", () => {
        if (!responded) fiber.interruptUnsafe()
      })
    }
  }

  const host = options.host ?? "0.0.0.0"
  // Connections are recycled every 5 minutes (after a 30 s grace for calls in flight): clients balancing over a headless
  // Service's addresses (round_robin) only look the name up again when a connection changes, so new pods get calls.
  const server = new grpc.Server({
    "grpc.max_connection_age_ms": 300_000,
    "grpc.max_connection_age_grace_ms": 30_000,
    ...options.serverOptions,
  })
  server.addService(HealthService, health)
  for (const svc of options.services) {
    const implementation: grpc.UntypedServiceImplementation = {}
    for (const [key, definition] of Object.entries(svc.definition)) {
      const handler = svc.handlers[key]
      if (handler === undefined || definition.requestStream || definition.responseStream) continue
      implementation[key] = unary(svc, definition.path.split("/")[2]!, handler)
    }
    server.addService(svc.definition, implementation)
  }

  const shutdown = Effect.gen(function* () {
    for (const name of statuses.keys()) setStatusUnsafe(name, "NOT_SERVING")
    for (const set of watchers.values()) for (const watcher of set) watcher.end()
    const drained = yield* Effect.callback<boolean>((resume) => {
      const timer = setTimeout(() => resume(Effect.succeed(false)), options.shutdownTimeoutMs ?? 10_000)
      server.tryShutdown(() => {
        clearTimeout(timer)
        resume(Effect.succeed(true))
      })
    })
    if (!drained) {
      yield* Effect.logWarning("gRPC server did not drain in time; cancelling in-flight calls", {
        in_flight: inFlight.size,
      })
      server.forceShutdown()
    }
    yield* Fiber.interruptAll([...inFlight])
    yield* Effect.logInfo("gRPC server stopped")
  })

  const port = yield* Effect.acquireRelease(
    Effect.callback<number, GrpcServerError>((resume) => {
      server.bindAsync(`${host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (error, port) => {
        if (error) {
          server.forceShutdown()
          resume(
            Effect.fail(new GrpcServerError({ message: `cannot listen on ${host}:${options.port}`, cause: error })),
          )
        } else resume(Effect.succeed(port))
      })
    }),
    () => shutdown,
  )
  yield* Effect.logInfo("gRPC server listening", { port, services: options.services.map((s) => s.name) })

  const setStatus = Effect.fn("GrpcServer.setStatus")(function* (name: string, status: ServingStatus) {
    yield* Effect.sync(() => setStatusUnsafe(name, status))
  })

  return GrpcServer.of({ port, setStatus })
})
