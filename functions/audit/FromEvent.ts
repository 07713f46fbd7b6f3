import type { CloudEvent } from "../../shared/CloudEvent.ts"
import { asStoredJson, type NewRecord, type Outcome } from "./AuditRecord.ts"

// Event types whose last segment says the attempt did not succeed (auth.login.failed, auth.token.reused, ...).
const FAILURE_VERBS = new Set(["failed", "denied", "rejected", "refused", "reused", "blocked"])

/** Whether an event type reports a failed or refused attempt (`*.failed`, `*.denied`, `auth.token.reused`, ...). */
export const outcomeOf = (type: string): Outcome =>
  FAILURE_VERBS.has(type.slice(type.lastIndexOf(".") + 1)) ? "failure" : "success"

const text = (value: unknown): string | null =>
  typeof value === "string" && value.length > 0 ? value : typeof value === "number" ? String(value) : null

// The kind of the target: explicit `targetType`, else the `<kind>Id` field holding the target's id (userId →
// user, sessionId → session), else the entity segment of the type (identity.user.created → user).
const targetTypeOf = (type: string, data: Record<string, unknown>, targetId: string | null): string | null => {
  const explicit = text(data.targetType)
  if (explicit !== null) return explicit
  if (targetId === null) return null
  for (const [key, value] of Object.entries(data)) {
    if (key.length > 2 && key.endsWith("Id") && value === targetId) return key.slice(0, -2)
  }
  return type.split(".")[1] ?? null
}

const AUDIT_FIELDS = new Set(["actor", "target", "targetType", "ip", "requestId"])

/**
 * Maps a consumed CloudEvent to an audit record: the id is the event id, the action its type; `actor`, `target`,
 * `ip` and `requestId` (added by every outbox) become columns and the rest of `data` the metadata.
 */
export const fromEvent = (event: CloudEvent): NewRecord => {
  const data =
    typeof event.data === "object" && event.data !== null && !Array.isArray(event.data)
      ? asStoredJson(event.data as Record<string, unknown>)
      : { value: event.data ?? null }
  const targetId = text(data.target) ?? text(event.subject)
  const occurred = new Date(event.time)
  return {
    id: event.id,
    occurredAt: Number.isNaN(occurred.getTime()) ? new Date().toISOString() : occurred.toISOString(),
    actorId: text(data.actor),
    action: event.type,
    targetType: targetTypeOf(event.type, data, targetId),
    targetId,
    outcome: outcomeOf(event.type),
    requestId: text(data.requestId),
    ip: text(data.ip),
    metadata: Object.fromEntries(Object.entries(data).filter(([key]) => !AUDIT_FIELDS.has(key))),
  }
}
