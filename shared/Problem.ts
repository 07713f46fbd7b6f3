import { Effect, Schema, SchemaIssue } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiError } from "effect/http-api"

// RFC 9457 problem types are URIs; ours are stable URNs built from the error code.
const typeOf = <C extends string>(code: C) => `urn:problem:${code}` as const

/** One field-level validation failure: where (dotted path) and what was wrong. */
export const FieldError = Schema.Struct({ path: Schema.String, message: Schema.String })
export type FieldError = typeof FieldError.Type

/** 400 validation_failed: the request did not match the contract; `errors` lists each problem. */
export class ValidationFailed extends HttpApiError.Problem<ValidationFailed>()(
  "ValidationFailed",
  { type: typeOf("validation_failed"), status: 400, title: "Validation failed" },
  { code: Schema.tag("validation_failed"), errors: Schema.Array(FieldError) },
) {}

/** 400 invalid_token: a mailed token that is unknown, already used or expired. */
export class InvalidToken extends HttpApiError.Problem<InvalidToken>()(
  "InvalidToken",
  { type: typeOf("invalid_token"), status: 400, title: "Invalid or expired token" },
  { code: Schema.tag("invalid_token") },
) {}

/** 401 unauthorized: missing or invalid credentials. */
export class Unauthorized extends HttpApiError.Problem<Unauthorized>()(
  "Unauthorized",
  { type: typeOf("unauthorized"), status: 401, title: "Unauthorized" },
  { code: Schema.tag("unauthorized") },
) {}

/** 401 invalid_credentials: wrong email or password (the same answer for both, in about the same time). */
export class InvalidCredentials extends HttpApiError.Problem<InvalidCredentials>()(
  "InvalidCredentials",
  { type: typeOf("invalid_credentials"), status: 401, title: "Invalid credentials" },
  { code: Schema.tag("invalid_credentials") },
) {}

/** 401 token_reused: a superseded refresh token came back; its whole session has been revoked. */
export class TokenReused extends HttpApiError.Problem<TokenReused>()(
  "TokenReused",
  { type: typeOf("token_reused"), status: 401, title: "Refresh token reused" },
  { code: Schema.tag("token_reused") },
) {}

/**
 * 429 too_many_requests: slow down; `retryAfter` seconds, and the `limit` of the window when there is one (sent as
 * `Retry-After` and `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` headers too).
 */
export class TooManyRequests extends HttpApiError.Problem<TooManyRequests>()(
  "TooManyRequests",
  { type: typeOf("too_many_requests"), status: 429, title: "Too many requests" },
  { code: Schema.tag("too_many_requests"), retryAfter: Schema.Int, limit: Schema.optional(Schema.Int) },
) {}

/** 403 forbidden: authenticated but not allowed. */
export class Forbidden extends HttpApiError.Problem<Forbidden>()(
  "Forbidden",
  { type: typeOf("forbidden"), status: 403, title: "Forbidden" },
  { code: Schema.tag("forbidden") },
) {}

/** 404 not_found: no such resource. */
export class NotFound extends HttpApiError.Problem<NotFound>()(
  "NotFound",
  { type: typeOf("not_found"), status: 404, title: "Not found" },
  { code: Schema.tag("not_found") },
) {}

/** 409 conflict: the change clashes with the current state. */
export class Conflict extends HttpApiError.Problem<Conflict>()(
  "Conflict",
  { type: typeOf("conflict"), status: 409, title: "Conflict" },
  { code: Schema.tag("conflict") },
) {}

/** 412 precondition_failed: the `If-Match` version is not the resource's current one (a stale write). */
export class PreconditionFailed extends HttpApiError.Problem<PreconditionFailed>()(
  "PreconditionFailed",
  { type: typeOf("precondition_failed"), status: 412, title: "Precondition failed" },
  { code: Schema.tag("precondition_failed") },
) {}

/** 422 idempotency_key_reused: the caller's `Idempotency-Key` was first used with another request. */
export class IdempotencyKeyReused extends HttpApiError.Problem<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  { type: typeOf("idempotency_key_reused"), status: 422, title: "Idempotency key reused" },
  { code: Schema.tag("idempotency_key_reused") },
) {}

/** 409 last_admin: the change would leave no active user holding `*` (nobody could administer the platform). */
export class LastAdmin extends HttpApiError.Problem<LastAdmin>()(
  "LastAdmin",
  { type: typeOf("last_admin"), status: 409, title: "Last administrator" },
  { code: Schema.tag("last_admin") },
) {}

/** 409 email_taken: another account already uses this email (case-insensitively). */
export class EmailTaken extends HttpApiError.Problem<EmailTaken>()(
  "EmailTaken",
  { type: typeOf("email_taken"), status: 409, title: "Email already registered" },
  { code: Schema.tag("email_taken") },
) {}

/** 415 unsupported_media_type: the request's (or an upload's) content type is not one the route accepts. */
export class UnsupportedMediaType extends HttpApiError.Problem<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { type: typeOf("unsupported_media_type"), status: 415, title: "Unsupported media type" },
  { code: Schema.tag("unsupported_media_type") },
) {}

/** 422 upload_mismatch: an uploaded object is not what was declared for it (size or type); it has been deleted. */
export class UploadMismatch extends HttpApiError.Problem<UploadMismatch>()(
  "UploadMismatch",
  { type: typeOf("upload_mismatch"), status: 422, title: "Upload mismatch" },
  { code: Schema.tag("upload_mismatch") },
) {}

/** 503 service_unavailable: a dependency is down; retry later (after `retryAfter` seconds when it says so). */
export class ServiceUnavailable extends HttpApiError.Problem<ServiceUnavailable>()(
  "ServiceUnavailable",
  { type: typeOf("service_unavailable"), status: 503, title: "Service unavailable" },
  { code: Schema.tag("service_unavailable"), retryAfter: Schema.optional(Schema.Int) },
) {}

/** 400 bad_request: a request that is not valid HTTP, or that an upstream refused without saying more. */
export class BadRequest extends HttpApiError.Problem<BadRequest>()(
  "BadRequest",
  { type: typeOf("bad_request"), status: 400, title: "Bad request" },
  { code: Schema.tag("bad_request") },
) {}

/** 408 request_timeout: the request took too long to arrive. */
export class RequestTimeout extends HttpApiError.Problem<RequestTimeout>()(
  "RequestTimeout",
  { type: typeOf("request_timeout"), status: 408, title: "Request timeout" },
  { code: Schema.tag("request_timeout") },
) {}

/** 413 payload_too_large: the request body is larger than the limit. */
export class PayloadTooLarge extends HttpApiError.Problem<PayloadTooLarge>()(
  "PayloadTooLarge",
  { type: typeOf("payload_too_large"), status: 413, title: "Payload too large" },
  { code: Schema.tag("payload_too_large") },
) {}

/** 431 request_header_fields_too_large: the request's headers are too large. */
export class RequestHeaderFieldsTooLarge extends HttpApiError.Problem<RequestHeaderFieldsTooLarge>()(
  "RequestHeaderFieldsTooLarge",
  { type: typeOf("request_header_fields_too_large"), status: 431, title: "Request header fields too large" },
  { code: Schema.tag("request_header_fields_too_large") },
) {}

/** 500 internal_error: a defect; the log has the details, the answer never does. */
export class InternalError extends HttpApiError.Problem<InternalError>()(
  "InternalError",
  { type: typeOf("internal_error"), status: 500, title: "Internal server error" },
  { code: Schema.tag("internal_error") },
) {}

/** 504 gateway_timeout: the service behind the gateway did not answer in time. */
export class GatewayTimeout extends HttpApiError.Problem<GatewayTimeout>()(
  "GatewayTimeout",
  { type: typeOf("gateway_timeout"), status: 504, title: "Gateway timeout" },
  { code: Schema.tag("gateway_timeout") },
) {}

/** The stable code and title the platform uses for a bare HTTP status. */
export const forStatus = (status: number): { readonly code: string; readonly title: string } =>
  statusCodes[status] ?? (status >= 500 ? statusCodes[500]! : { code: "bad_request", title: "Bad request" })

const statusCodes: Record<number, { code: string; title: string }> = {
  400: { code: "bad_request", title: "Bad request" },
  401: { code: "unauthorized", title: "Unauthorized" },
  403: { code: "forbidden", title: "Forbidden" },
  404: { code: "not_found", title: "Not found" },
  405: { code: "method_not_allowed", title: "Method not allowed" },
  406: { code: "not_acceptable", title: "Not acceptable" },
  408: { code: "request_timeout", title: "Request timeout" },
  409: { code: "conflict", title: "Conflict" },
  412: { code: "precondition_failed", title: "Precondition failed" },
  413: { code: "payload_too_large", title: "Payload too large" },
  415: { code: "unsupported_media_type", title: "Unsupported media type" },
  422: { code: "unprocessable_entity", title: "Unprocessable entity" },
  429: { code: "too_many_requests", title: "Too many requests" },
  431: { code: "request_header_fields_too_large", title: "Request header fields too large" },
  500: { code: "internal_error", title: "Internal server error" },
  502: { code: "bad_gateway", title: "Bad gateway" },
  503: { code: "service_unavailable", title: "Service unavailable" },
  504: { code: "gateway_timeout", title: "Gateway timeout" },
}

/** A problem+json response for a status, with an optional detail (never a stack trace). */
export const response = (status: number, detail?: string, extra?: Record<string, unknown>) => {
  const { code, title } = forStatus(status)
  return HttpServerResponse.jsonUnsafe(
    { type: typeOf(code), title, status, ...(detail ? { detail } : {}), code, ...extra },
    { status, contentType: "application/problem+json" },
  )
}

const standard = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * An infrastructure failure as a retryable 503 without internals: the log line says what failed (`log`) and why (the
 * error's message), the client reads `detail`.
 */
export const unavailable =
  (log: string, detail: string) =>
  (error: { readonly message: string } | string): Effect.Effect<never, ServiceUnavailable> =>
    Effect.andThen(
      Effect.logError(log, { error: typeof error === "string" ? error : error.message }),
      Effect.fail(new ServiceUnavailable({ detail })),
    )

/** A 400 validation_failed listing the issues of a schema failure (at most `MAX_FIELD_ERRORS`); paths are dotted, under `prefix` if given. */
export const validationFailed = (issue: SchemaIssue.Issue, prefix = ""): ValidationFailed => {
  const all = standard(issue).issues
  return new ValidationFailed({
    detail:
      all.length > MAX_FIELD_ERRORS
        ? `The request does not match the API contract (the first ${MAX_FIELD_ERRORS} of ${all.length} problems)`
        : "The request does not match the API contract",
    errors: all.slice(0, MAX_FIELD_ERRORS).map((i) => ({
      path:
        [prefix, ...(i.path ?? []).map((s) => String(typeof s === "object" ? s.key : s))].filter(Boolean).join(".") ||
        "body",
      message: i.message,
    })),
  })
}

/** The most field errors a 400 lists: 1,000 bad fields must not make a 60 KB answer. */
export const MAX_FIELD_ERRORS = 20

/** Decodes untrusted input (a gRPC request, an event) with a schema; failures become validation_failed. */
export const decode =
  <S extends Schema.Decoder<unknown>>(schema: S) =>
  (input: unknown): Effect.Effect<S["Type"], ValidationFailed, S["DecodingServices"]> =>
    Schema.decodeUnknownEffect(schema)(input, { errors: "all", onExcessProperty: "ignore" }).pipe(
      Effect.mapError((error) => validationFailed(error.issue)),
    )
