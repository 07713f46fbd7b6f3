import * as grpc from "@grpc/grpc-js"
import { Cause, Context, Option, Predicate, Schema } from "effect"
import * as Problem from "./Problem.ts"

/** Metadata key carrying the request id across services. */
export const REQUEST_ID = "x-request-id"
/** Metadata key naming the calling service. */
export const CALLER = "x-caller"
/** Metadata key of the caller's service token (`Bearer <jwt>`, see `ServiceIdentity`). */
export const AUTHORIZATION = "authorization"
/** Metadata key carrying the original client's address (internal calls only; audit fields of events). */
export const CLIENT_IP = "x-client-ip"
/** Metadata key carrying the signed-in user the call is made for (internal calls only; audit fields of events). */
export const ACTOR = "x-actor"
/** Metadata key carrying the W3C trace context of the caller's span. */
export const TRACEPARENT = "traceparent"
/** Trailer carrying the platform's stable error code (`not_found`, `validation_failed`, ...). */
export const ERROR_CODE = "x-error-code"
/** Trailer carrying the client-safe detail of a failure (percent-encoded UTF-8). */
export const ERROR_DETAIL = "x-error-detail"
/** Trailer carrying the field errors of a validation failure as JSON (percent-encoded UTF-8). */
export const ERROR_FIELDS = "x-error-fields"

/** The shape of one method of a ts-proto (outputServices=grpc-js) service definition. */
export interface MethodDefinition<Req, Res> {
  readonly path: string
  readonly requestStream: boolean
  readonly responseStream: boolean
  readonly requestSerialize: (value: Req) => Buffer
  readonly requestDeserialize: (value: Buffer) => Req
  readonly responseSerialize: (value: Res) => Buffer
  readonly responseDeserialize: (value: Buffer) => Res
}

/** A ts-proto service definition such as `IdentityServiceService`. */
export type ServiceDefinition = { readonly [method: string]: MethodDefinition<any, any> }

/** The names of the unary methods of a service definition. */
export type UnaryMethod<D> = {
  [K in keyof D]: D[K] extends { readonly requestStream: false; readonly responseStream: false } ? K : never
}[keyof D] &
  string

/** The request message type of a method definition. */
export type RequestOf<M> = M extends { readonly requestDeserialize: (value: Buffer) => infer Req } ? Req : never

/** The response message type of a method definition. */
export type ResponseOf<M> = M extends { readonly responseDeserialize: (value: Buffer) => infer Res } ? Res : never

/** The fully qualified gRPC service name of a definition (`identity.v1.IdentityService`). */
export const serviceName = (definition: ServiceDefinition): string => {
  const first = Object.values(definition)[0]
  return first ? first.path.split("/")[1]! : "unknown"
}

/** The deadline (epoch ms) of the gRPC call being served; outgoing calls never outlive it. */
export const CallDeadline = Context.Reference<number | undefined>("shared/Grpc/CallDeadline", {
  defaultValue: () => undefined,
})

/** The name of a gRPC status code (`NOT_FOUND`). */
export const statusName = (code: number): string => grpc.status[code] ?? `CODE_${code}`

/** A gRPC failure that has no platform problem class (DEADLINE_EXCEEDED, INTERNAL, RESOURCE_EXHAUSTED, ...). */
export class GrpcError extends Schema.TaggedError<GrpcError>()("GrpcError", {
  /** The gRPC status code. */
  code: Schema.Number,
  /** `<package.Service>/<Method>` of the failed call. */
  method: Schema.String,
  /** The status details as received; for logs, not for end users. */
  detail: Schema.String,
  /** The platform error code sent by the server, when it sent one. */
  errorCode: Schema.optional(Schema.String),
}) {
  override get message() {
    return `${this.method} failed with ${statusName(this.code)}: ${this.detail}`
  }
}

/** Every typed error a gRPC call through `GrpcClient` can fail with. */
export type GrpcFailure =
  | Problem.ValidationFailed
  | Problem.Unauthorized
  | Problem.Forbidden
  | Problem.NotFound
  | Problem.Conflict
  | Problem.EmailTaken
  | Problem.LastAdmin
  | Problem.ServiceUnavailable
  | GrpcError

/** A server-side failure turned into what goes on the wire: status, client-safe details and trailers. */
export interface FailureStatus {
  readonly code: grpc.status
  readonly details: string
  readonly metadata: grpc.Metadata
  /** True when the failure is the server's fault and should be logged with its cause. */
  readonly unexpected: boolean
}

const S = grpc.status

const codeToStatus: Record<string, grpc.status> = {
  validation_failed: S.INVALID_ARGUMENT,
  bad_request: S.INVALID_ARGUMENT,
  unprocessable_entity: S.INVALID_ARGUMENT,
  unauthorized: S.UNAUTHENTICATED,
  forbidden: S.PERMISSION_DENIED,
  not_found: S.NOT_FOUND,
  conflict: S.ALREADY_EXISTS,
  email_taken: S.ALREADY_EXISTS,
  last_admin: S.FAILED_PRECONDITION,
  too_many_requests: S.RESOURCE_EXHAUSTED,
  rate_limited: S.RESOURCE_EXHAUSTED,
  service_unavailable: S.UNAVAILABLE,
  request_timeout: S.DEADLINE_EXCEEDED,
  gateway_timeout: S.DEADLINE_EXCEEDED,
}

const httpToStatus: Record<number, grpc.status> = {
  400: S.INVALID_ARGUMENT,
  401: S.UNAUTHENTICATED,
  403: S.PERMISSION_DENIED,
  404: S.NOT_FOUND,
  408: S.DEADLINE_EXCEEDED,
  409: S.ALREADY_EXISTS,
  412: S.FAILED_PRECONDITION,
  422: S.INVALID_ARGUMENT,
  429: S.RESOURCE_EXHAUSTED,
  501: S.UNIMPLEMENTED,
  503: S.UNAVAILABLE,
  504: S.DEADLINE_EXCEEDED,
}

const statusToHttp: Partial<Record<grpc.status, number>> = {
  [S.INVALID_ARGUMENT]: 400,
  [S.UNAUTHENTICATED]: 401,
  [S.PERMISSION_DENIED]: 403,
  [S.NOT_FOUND]: 404,
  [S.ALREADY_EXISTS]: 409,
  [S.FAILED_PRECONDITION]: 412,
  [S.RESOURCE_EXHAUSTED]: 429,
  [S.UNIMPLEMENTED]: 501,
  [S.UNAVAILABLE]: 503,
  [S.DEADLINE_EXCEEDED]: 504,
}

// Codes a server passes through when a downstream gRPC call failed with them; the rest become INTERNAL.
const passThrough = new Set<grpc.status>([S.DEADLINE_EXCEEDED, S.RESOURCE_EXHAUSTED, S.UNAVAILABLE])

const PLATFORM_CODE = /^[a-z][a-z0-9_]{0,63}$/
const MAX_DETAIL = 1024
const MAX_FIELDS_JSON = 4096

// The HTTP status an error declares: a `status` field (platform problems) or an `httpApiStatus` schema annotation.
const httpStatusOf = (error: object): number | undefined => {
  if ("status" in error && Predicate.isNumber(error.status)) return error.status
  const ctor = error.constructor
  if (Schema.isSchema(ctor)) {
    const status = Schema.resolveAnnotations(ctor)?.httpApiStatus
    if (Predicate.isNumber(status)) return status
  }
  return undefined
}

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/** Percent-encodes everything but printable ASCII (and `%`), so any UTF-8 text fits an ASCII metadata value. */
export const encodeMetadataValue = (text: string): string =>
  text.replace(/[^\x20-\x24\x26-\x7e]/gu, (ch) =>
    [...Buffer.from(ch, "utf8")].map((b) => `%${b.toString(16).toUpperCase().padStart(2, "0")}`).join(""),
  )

/** Reverses `encodeMetadataValue`; a malformed value is returned as it came. */
export const decodeMetadataValue = (value: string): string => {
  try {
    return decodeURIComponent(value)
  } catch {
    return value
  }
}

/** The first string value of a metadata key, if any. */
export const metadataString = (metadata: grpc.Metadata, key: string): string | undefined => {
  const value = metadata.get(key)[0]
  return Predicate.isString(value) ? value : undefined
}

const fieldsJson = (errors: ReadonlyArray<Problem.FieldError>): string => {
  const kept: Array<Problem.FieldError> = []
  let size = 2
  for (const e of errors) {
    const entry = { path: clip(e.path, 256), message: clip(e.message, 256) }
    size += JSON.stringify(entry).length + 1
    if (size > MAX_FIELDS_JSON) break
    kept.push(entry)
  }
  return JSON.stringify(kept)
}

const failure = (
  code: grpc.status,
  errorCode: string,
  detail: string,
  options?: { readonly fields?: ReadonlyArray<Problem.FieldError>; readonly unexpected?: boolean },
): FailureStatus => {
  const details = clip(detail, MAX_DETAIL)
  const metadata = new grpc.Metadata()
  metadata.set(ERROR_CODE, errorCode)
  metadata.set(ERROR_DETAIL, encodeMetadataValue(details))
  if (options?.fields) metadata.set(ERROR_FIELDS, encodeMetadataValue(fieldsJson(options.fields)))
  return { code, details, metadata, unexpected: options?.unexpected ?? false }
}

const internal = (): FailureStatus =>
  failure(S.INTERNAL, "internal_error", "Internal server error", { unexpected: true })

// A typed failure: platform code and/or HTTP status decide the gRPC status; anything unrecognised is INTERNAL.
const fromError = (error: unknown): FailureStatus => {
  if (!Predicate.isObject(error)) return internal()
  if (error instanceof GrpcError) {
    const code = error.code as grpc.status
    return passThrough.has(code)
      ? failure(code, error.errorCode ?? Problem.forStatus(statusToHttp[code] ?? 500).code, title(code))
      : internal()
  }
  if (Cause.isTimeoutError(error)) return failure(S.DEADLINE_EXCEEDED, "gateway_timeout", "Deadline exceeded")
  const http = httpStatusOf(error)
  const declared = "code" in error && Predicate.isString(error.code) ? error.code : undefined
  const byCode = declared !== undefined ? codeToStatus[declared] : undefined
  const code = byCode ?? (http !== undefined ? httpToStatus[http] : undefined)
  if (code === undefined) return internal()
  const errorCode =
    declared !== undefined &&
    (byCode !== undefined || (http !== undefined && http < 500 && PLATFORM_CODE.test(declared)))
      ? declared
      : Problem.forStatus(http ?? statusToHttp[code] ?? 500).code
  const clientFault = http !== undefined ? http < 500 : code !== S.UNAVAILABLE && code !== S.DEADLINE_EXCEEDED
  const detail =
    "detail" in error && Predicate.isString(error.detail)
      ? error.detail
      : clientFault && error instanceof Error && error.message !== ""
        ? error.message
        : title(code)
  const fields =
    "errors" in error && Schema.is(Schema.Array(Problem.FieldError))(error.errors) ? error.errors : undefined
  return failure(code, errorCode, detail, fields ? { fields } : undefined)
}

const title = (code: grpc.status): string => Problem.forStatus(statusToHttp[code] ?? 500).title

/**
 * Maps the cause of a failed handler to a gRPC status: typed failures by their code/_tag/HTTP status, timeouts to
 * DEADLINE_EXCEEDED, defects and unknown failures to INTERNAL with a generic message (never a stack trace).
 */
export const failureStatus = (cause: Cause.Cause<unknown>): FailureStatus => {
  if (Cause.hasDies(cause)) return internal()
  const error = Cause.findErrorOption(cause)
  if (Option.isSome(error)) return fromError(error.value)
  if (Cause.hasInterrupts(cause)) return failure(S.CANCELLED, "cancelled", "Cancelled")
  return internal()
}

const decodeFields = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Array(Problem.FieldError)))

/**
 * Rebuilds the typed error a server sent: the platform code in the trailers wins, then the status code; codes with no
 * platform problem become `GrpcError`. Transport failures get a generic detail (no internal addresses leak).
 */
export const fromServiceError = (error: grpc.ServiceError, method: string): GrpcFailure => {
  const trailers = error.metadata ?? new grpc.Metadata()
  const errorCode = metadataString(trailers, ERROR_CODE)
  const sent = metadataString(trailers, ERROR_DETAIL)
  const trusted = errorCode !== undefined && sent !== undefined ? decodeMetadataValue(sent) : undefined
  const service = method.split("/")[0] ?? method
  const fieldsRaw = metadataString(trailers, ERROR_FIELDS)
  const errors = fieldsRaw !== undefined ? Option.getOrElse(decodeFields(decodeMetadataValue(fieldsRaw)), () => []) : []
  const withDetail = trusted !== undefined ? { detail: trusted } : {}
  switch (errorCode) {
    case "validation_failed":
      return new Problem.ValidationFailed({ ...withDetail, errors })
    case "not_found":
      return new Problem.NotFound(withDetail)
    case "conflict":
      return new Problem.Conflict(withDetail)
    case "email_taken":
      return new Problem.EmailTaken(withDetail)
    case "last_admin":
      return new Problem.LastAdmin(withDetail)
    case "unauthorized":
      return new Problem.Unauthorized(withDetail)
    case "forbidden":
      return new Problem.Forbidden(withDetail)
    case "service_unavailable":
      return new Problem.ServiceUnavailable(withDetail)
  }
  switch (error.code) {
    case S.INVALID_ARGUMENT:
      return new Problem.ValidationFailed({ ...withDetail, errors })
    case S.NOT_FOUND:
      return new Problem.NotFound(withDetail)
    case S.ALREADY_EXISTS:
      return new Problem.Conflict(withDetail)
    case S.UNAUTHENTICATED:
      return new Problem.Unauthorized(withDetail)
    case S.PERMISSION_DENIED:
      return new Problem.Forbidden(withDetail)
    case S.UNAVAILABLE:
      return new Problem.ServiceUnavailable({ detail: trusted ?? `${service} is unavailable` })
  }
  return new GrpcError({
    code: error.code,
    method,
    detail: trusted ?? error.details ?? "",
    ...(errorCode !== undefined ? { errorCode } : {}),
  })
}
