import { Context, Effect } from "effect"

/** A caller's request id is kept only when it is a short, plain token (HTTP header or gRPC metadata alike). */
export const isSaneId = (value: string | undefined): value is string =>
  value !== undefined && /^[A-Za-z0-9._:-]{1,128}$/.test(value)

/** The request id of the request being handled (annotated on every log line as request_id). */
export const RequestId = Context.Reference<string>("shared/RequestContext/RequestId", { defaultValue: () => "" })

/** The client address of the request being handled; "" when unknown (background work). */
export const ClientIp = Context.Reference<string>("shared/RequestContext/ClientIp", { defaultValue: () => "" })

/** The id of the signed-in user the work is done for; "" when anonymous or the system itself. */
export const Actor = Context.Reference<string>("shared/RequestContext/Actor", { defaultValue: () => "" })

/** Who did it, from where, in which request: the audit fields every event carries (null when unknown). */
export interface AuditFields {
  readonly actor: string | null
  readonly ip: string | null
  readonly requestId: string | null
}

/** The audit fields of the work in progress. */
export const auditFields: Effect.Effect<AuditFields> = Effect.gen(function* () {
  const [actor, ip, requestId] = [yield* Actor, yield* ClientIp, yield* RequestId]
  return { actor: actor || null, ip: ip || null, requestId: requestId || null }
})
