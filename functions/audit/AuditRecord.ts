import { createHash } from "node:crypto"
import { Schema } from "effect"

/** The outcome of an audited action. */
export const Outcome = Schema.Literals(["success", "failure"])
export type Outcome = typeof Outcome.Type

/** The prevHash of the first record of a chain. */
export const GENESIS_HASH = "0".repeat(64)

/** One audit record as stored and served. Times are RFC 3339 UTC strings with milliseconds. */
export class AuditRecord extends Schema.Class<AuditRecord>("AuditRecord")({
  id: Schema.String,
  occurredAt: Schema.String,
  actorId: Schema.NullOr(Schema.String),
  action: Schema.String,
  targetType: Schema.NullOr(Schema.String),
  targetId: Schema.NullOr(Schema.String),
  outcome: Outcome,
  requestId: Schema.NullOr(Schema.String),
  ip: Schema.NullOr(Schema.String),
  metadata: Schema.Record(Schema.String, Schema.Unknown),
  hash: Schema.String,
  prevHash: Schema.String,
}) {}

/** A record before it joins the chain (no hashes yet). */
export type NewRecord = Omit<AuditRecord, "hash" | "prevHash">

// JSON with object keys sorted at every level: one byte sequence per value, whatever the key order it came in.
const canonical = (value: unknown): string => {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null"
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`
}

/** The canonical encoding of a record and the hash before it, the general way: sorted-key JSON of every field. */
export const canonicalEncodingOf = (record: NewRecord, prevHash: string): string =>
  canonical({
    id: record.id,
    occurredAt: record.occurredAt,
    actorId: record.actorId,
    action: record.action,
    targetType: record.targetType,
    targetId: record.targetId,
    outcome: record.outcome,
    requestId: record.requestId,
    ip: record.ip,
    metadata: record.metadata,
    prevHash,
  })

// The record's own keys in sorted order, each with its JSON key text: the same bytes as canonicalEncodingOf without
// building and sorting an object per record (a full verify hashes every record; the general way cost ≈ 15 µs each).
const FIELDS = [
  "action",
  "actorId",
  "id",
  "ip",
  "metadata",
  "occurredAt",
  "outcome",
  "prevHash",
  "requestId",
  "targetId",
  "targetType",
] as const
const KEYS = FIELDS.map((key) => `${JSON.stringify(key)}:`)

/** The canonical encoding of a record and the hash before it: sorted-key JSON of every field (what is hashed). */
export const canonicalEncoding = (record: NewRecord, prevHash: string): string => {
  const values: Record<(typeof FIELDS)[number], unknown> = { ...record, prevHash }
  let out = "{"
  for (let i = 0; i < FIELDS.length; i++) {
    const value = values[FIELDS[i]!]
    if (value === undefined) continue
    if (out.length > 1) out += ","
    out += KEYS[i]
    out += typeof value === "string" ? JSON.stringify(value) : canonical(value)
  }
  return `${out}}`
}

/** SHA-256 (hex) of the canonical encoding of a record and its predecessor's hash. */
export const hashOf = (record: NewRecord, prevHash: string): string =>
  createHash("sha256").update(canonicalEncoding(record, prevHash)).digest("hex")

/** A JSON round trip: what jsonb will give back (drops undefined, turns dates into strings). */
export const asStoredJson = (value: Record<string, unknown>): Record<string, unknown> =>
  JSON.parse(JSON.stringify(value)) as Record<string, unknown>
