import { Context, Effect, Layer, Semaphore } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import { AuditRecord, GENESIS_HASH, hashOf, type NewRecord } from "./AuditRecord.ts"

/** What the log can be filtered by; `before` is the keyset position of the previous page's last row. */
export interface ListFilter {
  readonly actorId?: string | undefined
  readonly action?: string | undefined
  readonly targetId?: string | undefined
  readonly from?: string | undefined
  readonly to?: string | undefined
  readonly before?: { readonly at: string; readonly seq: string } | undefined
  readonly limit: number
}

/** A stored record with its chain position. */
export interface StoredRecord {
  readonly seq: string
  readonly record: AuditRecord
}

/** A record as the chain walk reads it: the stored fields as plain data (no schema class built per row). */
export interface ChainRecord {
  readonly seq: string
  readonly record: NewRecord & { readonly hash: string; readonly prevHash: string }
}

/** A verified position of the chain: the record at `seq` has `hash`, and the `checked` records up to it all check. */
export interface Checkpoint {
  readonly seq: string
  readonly hash: string
  readonly checked: number
}

interface Row {
  readonly seq: string
  readonly id: string
  readonly occurred_at: Date
  readonly actor_id: string | null
  readonly action: string
  readonly target_type: string | null
  readonly target_id: string | null
  readonly outcome: "success" | "failure"
  readonly request_id: string | null
  readonly ip: string | null
  readonly metadata: Record<string, unknown>
  readonly hash: string
  readonly prev_hash: string
  readonly [column: string]: unknown
}

// Read through the alias `e`; ORDER BY names `e.seq`, since a bare `seq` would sort by the text alias ("10" < "9").
const COLUMNS = `e.seq::text AS seq, e.id, e.occurred_at, e.actor_id, e.action, e.target_type, e.target_id, e.outcome,
  e.request_id, e.ip, e.metadata, e.hash, e.prev_hash`

const toChain = (row: Row): ChainRecord => ({
  seq: row.seq,
  record: {
    id: row.id,
    occurredAt: row.occurred_at.toISOString(),
    actorId: row.actor_id,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    outcome: row.outcome,
    requestId: row.request_id,
    ip: row.ip,
    metadata: row.metadata,
    hash: row.hash,
    prevHash: row.prev_hash,
  },
})

const toStored = (row: Row): StoredRecord => {
  const { seq, record } = toChain(row)
  return { seq, record: new AuditRecord(record) }
}

/** The audit log's table: appends serialised into one linear hash chain, filtered reads, the chain in order. */
export class AuditRepo extends Context.Service<
  AuditRepo,
  {
    /** Appends a record after the current head (or returns the stored one when its id is already there). */
    append(record: NewRecord): Effect.Effect<AuditRecord, DbError>
    /** A page of records, newest first (occurredAt, then chain order), `limit` + 1 rows. */
    list(filter: ListFilter): Effect.Effect<ReadonlyArray<StoredRecord>, DbError>
    /** Up to `limit` records after chain position `afterSeq`, in chain order. */
    chain(afterSeq: string, limit: number): Effect.Effect<ReadonlyArray<ChainRecord>, DbError>
    /** The record at chain position `seq`, if there is one. */
    at(seq: string): Effect.Effect<ChainRecord | undefined, DbError>
    /** The furthest verified position, if the chain was ever verified. */
    lastCheckpoint(): Effect.Effect<Checkpoint | undefined, DbError>
    /** Keeps a verified position (the same position twice keeps the first). */
    saveCheckpoint(checkpoint: Checkpoint): Effect.Effect<void, DbError>
  }
>()("audit/AuditRepo") {
  /** The repository over the service's Db. */
  static readonly layer = Layer.effect(
    AuditRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const table = `${db.schema}.audit_events`
      const checkpoints = `${db.schema}.audit_checkpoints`
      const lockKey = `${db.schema}.audit_events:chain`
      // Appends of this instance queue here, in memory, rather than each holding a pooled connection while it waits
      // for the advisory lock (a burst of Record calls would otherwise exhaust the pool).
      const turn = Semaphore.makeUnsafe(1)

      // One transaction-level advisory lock per schema makes appends take turns: each one reads the head committed
      // by the one before, so the chain cannot fork, whoever appends (consumers, Record calls, other instances).
      // Inside a consumer's inbox transaction this joins it; the lock is then held until that commit.
      const append = Effect.fn("AuditRepo.append")(function* (record: NewRecord) {
        return yield* turn.withPermit(
          db.transaction(
            Effect.gen(function* () {
              yield* db.query("SELECT pg_advisory_xact_lock(hashtext($1))", [lockKey])
              const [existing] = yield* db.query<Row>(`SELECT ${COLUMNS} FROM ${table} e WHERE e.id = $1`, [record.id])
              if (existing) return toStored(existing).record
              const [head] = yield* db.query<{ hash: string }>(`SELECT hash FROM ${table} ORDER BY seq DESC LIMIT 1`)
              const prevHash = head?.hash ?? GENESIS_HASH
              const hash = hashOf(record, prevHash)
              yield* db.query(
                `INSERT INTO ${table} (id, occurred_at, actor_id, action, target_type, target_id, outcome, request_id,
                 ip, metadata, hash, prev_hash)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)`,
                [
                  record.id,
                  record.occurredAt,
                  record.actorId,
                  record.action,
                  record.targetType,
                  record.targetId,
                  record.outcome,
                  record.requestId,
                  record.ip,
                  JSON.stringify(record.metadata),
                  hash,
                  prevHash,
                ],
              )
              return new AuditRecord({ ...record, hash, prevHash })
            }),
          ),
        )
      })

      const list = Effect.fn("AuditRepo.list")(function* (filter: ListFilter) {
        const where: Array<string> = []
        const params: Array<unknown> = []
        const add = (condition: (placeholder: string) => string, value: unknown) => {
          params.push(value)
          where.push(condition(`$${params.length}`))
        }
        if (filter.actorId !== undefined) add((p) => `e.actor_id = ${p}`, filter.actorId)
        if (filter.action !== undefined) add((p) => `e.action = ${p}`, filter.action)
        if (filter.targetId !== undefined) add((p) => `e.target_id = ${p}`, filter.targetId)
        if (filter.from !== undefined) add((p) => `e.occurred_at >= ${p}::timestamptz`, filter.from)
        if (filter.to !== undefined) add((p) => `e.occurred_at < ${p}::timestamptz`, filter.to)
        if (filter.before !== undefined) {
          params.push(filter.before.at, filter.before.seq)
          where.push(`(e.occurred_at, e.seq) < ($${params.length - 1}::timestamptz, $${params.length}::bigint)`)
        }
        params.push(filter.limit + 1)
        const rows = yield* db.query<Row>(
          `SELECT ${COLUMNS} FROM ${table} e ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
           ORDER BY e.occurred_at DESC, e.seq DESC LIMIT $${params.length}`,
          params,
        )
        return rows.map(toStored)
      })

      const chain = Effect.fn("AuditRepo.chain")(function* (afterSeq: string, limit: number) {
        const rows = yield* db.query<Row>(
          `SELECT ${COLUMNS} FROM ${table} e WHERE e.seq > $1::bigint ORDER BY e.seq LIMIT $2`,
          [afterSeq, limit],
        )
        return rows.map(toChain)
      })

      const at = Effect.fn("AuditRepo.at")(function* (seq: string) {
        const [row] = yield* db.query<Row>(`SELECT ${COLUMNS} FROM ${table} e WHERE e.seq = $1::bigint`, [seq])
        return row === undefined ? undefined : toChain(row)
      })

      const lastCheckpoint = Effect.fn("AuditRepo.lastCheckpoint")(function* () {
        const [row] = yield* db.query<{ seq: string; hash: string; checked: string }>(
          `SELECT c.seq::text AS seq, c.hash, c.checked::text AS checked FROM ${checkpoints} c ORDER BY c.seq DESC LIMIT 1`,
        )
        return row === undefined ? undefined : { seq: row.seq, hash: row.hash, checked: Number(row.checked) }
      })

      const saveCheckpoint = Effect.fn("AuditRepo.saveCheckpoint")(function* (checkpoint: Checkpoint) {
        yield* db.query(
          `INSERT INTO ${checkpoints} (seq, hash, checked) VALUES ($1::bigint, $2, $3) ON CONFLICT (seq) DO NOTHING`,
          [checkpoint.seq, checkpoint.hash, checkpoint.checked],
        )
      })

      return AuditRepo.of({ append, list, chain, at, lastCheckpoint, saveCheckpoint })
    }),
  )
}
