import { describe, expect, it } from "@effect/vitest"
import * as grpc from "@grpc/grpc-js"
import {
  Cause,
  Context,
  Deferred,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Metric,
  Option,
  References,
  Scope,
  Tracer,
} from "effect"
import {
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
  HealthClient,
} from "../proto/gen/grpc/health/v1/health.ts"
import {
  type CreateUserResponse,
  type GetUserResponse,
  IdentityServiceClient,
  IdentityServiceService,
  type User,
} from "../proto/gen/identity/v1/identity.ts"
import * as Grpc from "./Grpc.ts"
import * as GrpcClient from "./GrpcClient.ts"
import * as GrpcServer from "./GrpcServer.ts"
import { EmailTaken, NotFound, ServiceUnavailable, ValidationFailed } from "./Problem.ts"
import { RequestId } from "./RequestContext.ts"
import * as ServiceIdentityModule from "./ServiceIdentity.ts"
import { ServiceIdentity } from "./ServiceIdentity.ts"
import { freePort as newPort } from "./testing/ports.ts"

const devKeys = { serviceKey: Option.none(), servicePublicKeys: Option.none() }

// ---- a small in-test IdentityService -----------------------------------------------------------------------------

interface Seen {
  readonly call: GrpcServer.GrpcCall
  readonly span: Tracer.Span | undefined
  readonly requestIdRef: string
  readonly annotations: Record<string, unknown>
}

const makeIdentity = () => {
  const users = new Map<string, User>()
  const seen: Array<Seen> = []
  const started = Deferred.makeUnsafe<void>()
  let interrupted = 0
  let unavailableLeft = 0
  let calls = 0
  const record = (call: GrpcServer.GrpcCall) =>
    Effect.gen(function* () {
      calls++
      seen.push({
        call,
        span: Option.getOrUndefined(yield* Effect.option(Effect.currentSpan)),
        requestIdRef: yield* RequestId,
        annotations: yield* References.CurrentLogAnnotations,
      })
    })
  const service = GrpcServer.service(IdentityServiceService, {
    createUser: (request, call) =>
      Effect.gen(function* () {
        yield* record(call)
        if (unavailableLeft > 0) {
          unavailableLeft--
          return yield* new ServiceUnavailable({ detail: "warming up" })
        }
        if (!request.email.includes("@")) {
          return yield* new ValidationFailed({
            detail: "The request does not match the API contract",
            errors: [
              { path: "email", message: "must be an email address" },
              { path: "name", message: "must not be empty — ünïcødé" },
            ],
          })
        }
        if ([...users.values()].some((u) => u.email === request.email)) {
          return yield* new EmailTaken({ detail: `${request.email} is already registered` })
        }
        const now = new Date().toISOString()
        const user: User = {
          id: `u${users.size + 1}`,
          email: request.email,
          name: request.name,
          emailVerified: false,
          status: "active",
          createdAt: now,
          updatedAt: now,
        }
        users.set(user.id, user)
        return { user } satisfies CreateUserResponse
      }),
    getUser: (request, call) =>
      Effect.gen(function* () {
        yield* record(call)
        if (request.id === "boom") return yield* Effect.die(new Error("secret: db password is hunter2"))
        if (request.id.startsWith("slow")) {
          yield* Deferred.succeed(started, undefined)
          yield* Effect.sleep(Number(request.id.slice(4)) || 300).pipe(
            Effect.onInterrupt(() => Effect.sync(() => interrupted++)),
          )
          return { user: undefined } satisfies GetUserResponse
        }
        const user = users.get(request.id)
        if (!user) return yield* new NotFound({ detail: `user ${request.id} not found` })
        return { user } satisfies GetUserResponse
      }),
    getUserByEmail: (request) =>
      Effect.gen(function* () {
        const user = [...users.values()].find((u) => u.email === request.email)
        if (!user) return yield* new NotFound({ detail: "no user with this email" })
        return { user }
      }),
    verifyCredentials: () => Effect.succeed({ valid: false }),
  })
  return {
    service,
    seen,
    started,
    get interrupted() {
      return interrupted
    },
    get calls() {
      return calls
    },
    failNextWithUnavailable: (n: number) => {
      unavailableLeft = n
    },
  }
}

// ---- helpers -----------------------------------------------------------------------------------------------------

interface LogLine {
  readonly level: string
  readonly message: unknown
  readonly cause: string
}

// Collects the server's log lines (also keeps test output quiet).
const collectLogs = (lines: Array<LogLine>) =>
  Logger.layer([
    Logger.make(({ logLevel, message, cause }) => {
      lines.push({ level: logLevel, message, cause: cause.reasons.length > 0 ? Cause.pretty(cause) : "" })
    }),
  ])

const startServer = (
  services: ReadonlyArray<GrpcServer.GrpcService<never>>,
  options?: { readonly port?: number; readonly shutdownTimeoutMs?: number; readonly logs?: Array<LogLine> },
) =>
  Layer.build(
    GrpcServer.GrpcServer.layer({
      port: options?.port ?? 0,
      host: "127.0.0.1",
      services,
      ...(options?.shutdownTimeoutMs !== undefined ? { shutdownTimeoutMs: options.shutdownTimeoutMs } : {}),
    }).pipe(
      Layer.provide(collectLogs(options?.logs ?? [])),
      Layer.provide(ServiceIdentity.layerDev("identity", ["test-caller"])),
    ),
  ).pipe(Effect.map((context) => Context.get(context, GrpcServer.GrpcServer)))

const identityClient = (port: number, options?: Partial<GrpcClient.GrpcClientOptions>) =>
  GrpcClient.make(IdentityServiceClient, { address: `127.0.0.1:${port}`, ...options }).pipe(
    Effect.provide(ServiceIdentity.layerDev("test-caller")),
  )

const freePort = Effect.promise(newPort)

// Attempts the client made for one method, by status name (from the grpc_client_requests_total counter).
const clientAttempts = (method: string, code: string) =>
  Effect.map(Metric.snapshot, (snapshots) =>
    snapshots
      .filter(
        (s) => s.id === "grpc_client_requests_total" && s.attributes?.method === method && s.attributes?.code === code,
      )
      .reduce((n, s) => n + Number((s.state as { count: number | bigint }).count), 0),
  )

// A service token of "test-caller" for identity, as GrpcClient sends it.
const callerToken = Effect.suspend(() =>
  ServiceIdentityModule.make({ name: "test-caller", callers: [], functions: [], config: devKeys }).token("identity"),
)

// A raw grpc-js call, to look at exactly what is on the wire.
const rawGetUser = (port: number, id: string, token: Effect.Effect<string | undefined> = callerToken) =>
  Effect.flatMap(token, (bearer) =>
    Effect.callback<grpc.ServiceError | GetUserResponse>((resume) => {
      const client = new IdentityServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure())
      const metadata = new grpc.Metadata()
      if (bearer !== undefined) metadata.set("authorization", `Bearer ${bearer}`)
      client.getUser({ id }, metadata, (error, response) => {
        client.close()
        resume(Effect.succeed(error ?? response))
      })
    }),
  )

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error("expected a failure")
  const error = Cause.findErrorOption(exit.cause)
  if (Option.isNone(error)) throw new Error(`expected a typed failure, got ${Cause.pretty(exit.cause)}`)
  return error.value
}

// ---- tests -------------------------------------------------------------------------------------------------------

describe("Grpc", () => {
  it.live("round trip: unary calls through GrpcServer.service and GrpcClient.call", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const server = yield* startServer([identity.service])
      const client = yield* identityClient(server.port)
      expect(client.service).toBe("identity.v1.IdentityService")
      const created = yield* client.call("createUser", { email: "ada@example.com", name: "Ada" })
      expect(created.user?.email).toBe("ada@example.com")
      const read = yield* client.call("getUser", { id: created.user!.id }, { idempotent: true })
      expect(read.user).toEqual(created.user)
      expect(identity.seen[0]?.call.method).toBe("CreateUser")
      expect(identity.seen[0]?.call.service).toBe("identity.v1.IdentityService")
      expect(identity.seen[0]?.call.deadline).toBeGreaterThan(Date.now())
    }),
  )

  it.live("error mapping: NOT_FOUND -> NotFound, ALREADY_EXISTS/email_taken -> EmailTaken, detail kept", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const server = yield* startServer([identity.service])
      const client = yield* identityClient(server.port)

      const missing = failureOf(yield* Effect.exit(client.call("getUser", { id: "nope" })))
      expect(missing).toBeInstanceOf(NotFound)
      expect((missing as NotFound).detail).toBe("user nope not found")
      expect(missing.code).toBe("not_found")

      const wire = yield* rawGetUser(server.port, "nope")
      expect((wire as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND)
      expect((wire as grpc.ServiceError).metadata.get(Grpc.ERROR_CODE)).toEqual(["not_found"])

      yield* client.call("createUser", { email: "bob@example.com", name: "Bob" })
      const taken = failureOf(yield* Effect.exit(client.call("createUser", { email: "bob@example.com", name: "B" })))
      expect(taken).toBeInstanceOf(EmailTaken)
      expect((taken as EmailTaken).detail).toBe("bob@example.com is already registered")
    }),
  )

  it.live("error mapping: validation errors travel as INVALID_ARGUMENT and keep their fields", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const server = yield* startServer([identity.service])
      const client = yield* identityClient(server.port)
      const error = failureOf(yield* Effect.exit(client.call("createUser", { email: "not-an-email", name: "" })))
      expect(error).toBeInstanceOf(ValidationFailed)
      const invalid = error as ValidationFailed
      expect(invalid.code).toBe("validation_failed")
      expect(invalid.detail).toBe("The request does not match the API contract")
      expect(invalid.errors).toEqual([
        { path: "email", message: "must be an email address" },
        { path: "name", message: "must not be empty — ünïcødé" },
      ])
    }),
  )

  it.live("a defect becomes INTERNAL with a generic message: no message or stack leaks, the server logs it", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const logs: Array<LogLine> = []
      const server = yield* startServer([identity.service], { logs })
      const client = yield* identityClient(server.port)

      const error = failureOf(yield* Effect.exit(client.call("getUser", { id: "boom" })))
      expect(error).toBeInstanceOf(Grpc.GrpcError)
      expect((error as Grpc.GrpcError).code).toBe(grpc.status.INTERNAL)
      expect((error as Grpc.GrpcError).errorCode).toBe("internal_error")

      const wire = (yield* rawGetUser(server.port, "boom")) as grpc.ServiceError
      expect(wire.code).toBe(grpc.status.INTERNAL)
      expect(wire.details).toBe("Internal server error")
      const everything = JSON.stringify({ details: wire.details, trailers: wire.metadata.getMap() })
      expect(everything).not.toContain("hunter2")
      expect(everything).not.toMatch(/at .*\.ts:\d+/)
      expect(logs.some((l) => l.level === "Error" && l.cause.includes("hunter2"))).toBe(true)
    }),
  )

  it.live("deadline exceeded: the client gets DEADLINE_EXCEEDED and the server handler is interrupted", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const server = yield* startServer([identity.service])
      const client = yield* identityClient(server.port)
      const startedAt = Date.now()
      const error = failureOf(yield* Effect.exit(client.call("getUser", { id: "slow2000" }, { timeoutMs: 150 })))
      expect(Date.now() - startedAt).toBeLessThan(1_000)
      expect(error).toBeInstanceOf(Grpc.GrpcError)
      expect((error as Grpc.GrpcError).code).toBe(grpc.status.DEADLINE_EXCEEDED)
      yield* Effect.sleep(50)
      expect(identity.interrupted).toBe(1)
    }),
  )

  it.live("retries an idempotent call while the server is briefly unavailable (server starts after attempt 1)", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const client = yield* identityClient(port, { retries: 5 })
      const before = yield* clientAttempts("GetUser", "UNAVAILABLE")
      const pending = yield* Effect.forkChild(client.call("getUser", { id: "nope" }, { idempotent: true }))
      // Start the server only once the first attempt has failed.
      while ((yield* clientAttempts("GetUser", "UNAVAILABLE")) === before) yield* Effect.sleep(5)
      const identity = makeIdentity()
      yield* startServer([identity.service], { port })
      const exit = yield* Fiber.await(pending)
      expect(failureOf(exit)).toBeInstanceOf(NotFound) // answered by the server, so a later attempt got through
      expect(identity.calls).toBe(1)
      expect((yield* clientAttempts("GetUser", "UNAVAILABLE")) - before).toBeGreaterThanOrEqual(1)
    }),
  )

  it.live("retries an idempotent call on UNAVAILABLE from the server, never a non-idempotent one", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const server = yield* startServer([identity.service])
      const client = yield* identityClient(server.port)

      identity.failNextWithUnavailable(1)
      const once = failureOf(yield* Effect.exit(client.call("createUser", { email: "c@example.com", name: "C" })))
      expect(once).toBeInstanceOf(ServiceUnavailable)
      expect((once as ServiceUnavailable).detail).toBe("warming up")
      expect(identity.calls).toBe(1)

      identity.failNextWithUnavailable(1)
      const retried = yield* client.call("createUser", { email: "d@example.com", name: "D" }, { idempotent: true })
      expect(retried.user?.email).toBe("d@example.com")
      expect(identity.calls).toBe(3)
    }),
  )

  it.live("does not retry a non-idempotent call when the server is down", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const client = yield* identityClient(port)
      const before = yield* clientAttempts("CreateUser", "UNAVAILABLE")
      const error = failureOf(yield* Effect.exit(client.call("createUser", { email: "e@example.com", name: "E" })))
      expect(error).toBeInstanceOf(ServiceUnavailable)
      expect((error as ServiceUnavailable).detail).toBe("identity.v1.IdentityService is unavailable")
      expect((yield* clientAttempts("CreateUser", "UNAVAILABLE")) - before).toBe(1)
    }),
  )

  it.live("propagates request id, caller and trace context; the server span is a child of the client span", () => {
    const spans: Array<Tracer.NativeSpan> = []
    const tracer = Tracer.make({
      span(options) {
        const span = new Tracer.NativeSpan(options)
        spans.push(span)
        return span
      },
    })
    return Effect.gen(function* () {
      const identity = makeIdentity()
      const server = yield* startServer([identity.service])
      const client = yield* identityClient(server.port)
      yield* client
        .call("getUser", { id: "nope" })
        .pipe(Effect.ignore, Effect.provideService(RequestId, "req-abc-123"), Effect.withSpan("caller-work"))
      const seen = identity.seen[0]!
      expect(seen.call.requestId).toBe("req-abc-123")
      expect(seen.requestIdRef).toBe("req-abc-123")
      expect(seen.annotations.request_id).toBe("req-abc-123")
      expect(seen.call.caller).toBe("test-caller")

      const clientSpan = spans.find((s) => s.name === "Grpc.identity.v1.IdentityService/GetUser" && s.kind === "client")
      const serverSpan = seen.span!
      expect(clientSpan).toBeDefined()
      expect(serverSpan.name).toBe("Grpc.identity.v1.IdentityService/GetUser")
      expect(serverSpan.kind).toBe("server")
      expect(serverSpan.traceId).toBe(clientSpan!.traceId)
      expect(Option.getOrUndefined(serverSpan.parent)?.spanId).toBe(clientSpan!.spanId)
      const callerWork = spans.find((s) => s.name === "caller-work")!
      expect(Option.getOrUndefined(clientSpan!.parent)?.spanId).toBe(callerWork.spanId)
      expect(clientSpan!.attributes.get("rpc.grpc.status_code")).toBe(grpc.status.NOT_FOUND)

      // Without an incoming request id the server makes one up.
      yield* client.call("getUser", { id: "nope" }).pipe(Effect.ignore)
      expect(identity.seen[1]!.call.requestId).toMatch(/^[0-9a-f-]{36}$/)
    }).pipe(Effect.provideService(Tracer.Tracer, tracer))
  })

  it.live("health: Check answers SERVING for the server and its services, follows setStatus; Watch streams", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const server = yield* startServer([identity.service])
      const health = yield* GrpcClient.make(HealthClient, { address: `127.0.0.1:${server.port}` }).pipe(
        Effect.provide(ServiceIdentity.layerDev("probe")),
      )
      const { SERVING, NOT_SERVING } = HealthCheckResponse_ServingStatus
      expect((yield* health.call("check", { service: "" })).status).toBe(SERVING)
      expect((yield* health.call("check", { service: "identity.v1.IdentityService" })).status).toBe(SERVING)
      expect(failureOf(yield* Effect.exit(health.call("check", { service: "nope.v1.Nope" })))).toBeInstanceOf(NotFound)
      yield* server.setStatus("identity.v1.IdentityService", "NOT_SERVING")
      expect((yield* health.call("check", { service: "identity.v1.IdentityService" })).status).toBe(NOT_SERVING)

      // Watch: the current status first, then each change.
      const received = yield* Effect.callback<ReadonlyArray<number>>((resume) => {
        const raw = new HealthClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure())
        const stream = raw.watch({ service: "identity.v1.IdentityService" })
        const statuses: Array<number> = []
        stream.on("data", (message: HealthCheckResponse) => {
          statuses.push(message.status)
          if (statuses.length === 1) Effect.runFork(server.setStatus("identity.v1.IdentityService", "SERVING"))
          if (statuses.length === 2) {
            stream.cancel()
            raw.close()
            resume(Effect.succeed(statuses))
          }
        })
        stream.on("error", () => {})
      })
      expect(received).toEqual([NOT_SERVING, SERVING])
    }),
  )

  it.live("graceful shutdown: an in-flight call finishes, new calls are refused", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const serverScope = yield* Scope.make()
      const server = yield* startServer([identity.service]).pipe(Scope.provide(serverScope))
      const client = yield* identityClient(server.port)
      const inFlight = yield* Effect.forkChild(client.call("getUser", { id: "slow400" }))
      yield* Deferred.await(identity.started)
      const closing = yield* Effect.forkChild(Scope.close(serverScope, Exit.void))
      const result = yield* Fiber.join(inFlight)
      expect(result).toEqual({ user: undefined })
      yield* Fiber.join(closing)
      expect(identity.interrupted).toBe(0)
      const after = failureOf(yield* Effect.exit(client.call("getUser", { id: "nope" })))
      expect(after).toBeInstanceOf(ServiceUnavailable)
    }),
  )

  it.live("shutdown cancels calls that outlive the drain timeout", () =>
    Effect.gen(function* () {
      const identity = makeIdentity()
      const serverScope = yield* Scope.make()
      const server = yield* startServer([identity.service], { shutdownTimeoutMs: 100 }).pipe(Scope.provide(serverScope))
      const client = yield* identityClient(server.port)
      const inFlight = yield* Effect.forkChild(Effect.exit(client.call("getUser", { id: "slow5000" })))
      yield* Deferred.await(identity.started)
      const startedAt = Date.now()
      yield* Scope.close(serverScope, Exit.void)
      expect(Date.now() - startedAt).toBeLessThan(1_000)
      const exit = yield* Fiber.join(inFlight)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(identity.interrupted).toBe(1)
    }),
  )
})
