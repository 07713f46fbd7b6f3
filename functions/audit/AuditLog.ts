import { Context, Effect, Layer } from "effect"
import type { CloudEvent } from "../../shared/CloudEvent.ts"
import type { DbError } from "../../shared/Db.ts"
import { DEFAULT_LIMIT, decodeCursorWhere, pageOf } from "../../shared/Pagination.ts"
import type { ServiceUnavailable, ValidationFailed } from "../../shared/Problem.ts"
import * as Problem from "../../shared/Problem.ts"
import { type AuditRecord, GENESIS_HASH, hashOf, type NewRecord } from "./AuditRecord.ts"
import { AuditRepo, type Checkpoint } from "./AuditRepo.ts"
import { fromEvent } from "./FromEvent.ts"

/** Filters and page of `GET /api/v1/audit/events` (validated by the HTTP contract). */
export interface ListQuery {
  readonly actorId?: string | undefined
  readonly action?: string | undefined
  readonly targetId?: string | undefined
  readonly from?: string | undefined
  readonly to?: string | undefined
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

/**
 * The answer of a chain verification: intact up to `head` (`checked` records, `rechecked` of them by this call), or
 * broken at the first record that does not check.
 */
export type Verification =
  | { readonly ok: true; readonly checked: number; readonly head: string | null; readonly rechecked: number }
  | { readonly ok: false; readonly brokenAt: string }

const VERIFY_BATCH = 5000

const unavailable = Problem.unavailable("database unavailable", "the audit log is unavailable, retry later")

/** The audit log: appends (events and direct writes), filtered reads and verification of the hash chain. */
export class AuditLog extends Context.Service<
  AuditLog,
  {
    /** Appends a record; the same id twice keeps the first (idempotent). */
    record(record: NewRecord): Effect.Effect<AuditRecord, DbError>
    /** Appends the record of a consumed event (inside the consumer's inbox transaction). */
    recordEvent(event: CloudEvent): Effect.Effect<AuditRecord, DbError>
    /** A page of records, newest first. */
    list(
      query: ListQuery,
    ): Effect.Effect<
      { readonly items: ReadonlyArray<AuditRecord>; readonly nextCursor: string | null },
      ValidationFailed | ServiceUnavailable
    >
    /**
     * Walks the chain in order, recomputing every hash and link, from the last verified checkpoint (its record is
     * re-checked first; a checkpoint that no longer matches falls back to the whole chain) or, with `full`, from the
     * first record. An intact walk leaves a checkpoint at its head, so the next call's cost grows with new records only.
     */
    verify(options?: { readonly full?: boolean }): Effect.Effect<Verification, ServiceUnavailable>
  }
>()("audit/AuditLog") {
  /** The audit log over its repository. */
  static readonly layer = Layer.effect(
    AuditLog,
    Effect.gen(function* () {
      const repo = yield* AuditRepo

      const record = Effect.fn("AuditLog.record")(function* (input: NewRecord) {
        return yield* repo.append(input)
      })

      const recordEvent = Effect.fn("AuditLog.recordEvent")(function* (event: CloudEvent) {
        return yield* repo.append(fromEvent(event))
      })

      const list = Effect.fn("AuditLog.list")(function* (query: ListQuery) {
        const limit = query.limit ?? DEFAULT_LIMIT
        // The audit log's keyset is (occurred_at, seq): a cursor holding anything else is not one of its own.
        const position =
          query.cursor === undefined
            ? undefined
            : yield* decodeCursorWhere(query.cursor, (p) => /^\d{1,19}$/.test(p.id) && !Number.isNaN(Date.parse(p.at)))
        const before = position === undefined ? undefined : { at: position.at, seq: position.id }
        const rows = yield* repo.list({ ...query, before, limit }).pipe(Effect.catchTag("DbError", unavailable))
        const page = pageOf(rows, limit, (row) => ({ at: row.record.occurredAt, id: row.seq }))
        return { items: page.items.map((row) => row.record), nextCursor: page.nextCursor }
      })

      // From `from` (or the genesis), recompute each record's hash and link; checkpoint the head of an intact walk.
      const walk = Effect.fn("AuditLog.walk")(function* (from: Checkpoint | undefined) {
        let expectedPrev = from?.hash ?? GENESIS_HASH
        let after = from?.seq ?? "0"
        let checked = from?.checked ?? 0
        let rechecked = 0
        while (true) {
          const batch = yield* repo.chain(after, VERIFY_BATCH)
          for (const { seq, record } of batch) {
            if (record.prevHash !== expectedPrev || hashOf(record, record.prevHash) !== record.hash) {
              yield* Effect.logWarning("audit chain broken", { brokenAt: record.id, seq })
              return { ok: false, brokenAt: record.id } satisfies Verification
            }
            expectedPrev = record.hash
            after = seq
            checked++
            rechecked++
          }
          if (batch.length < VERIFY_BATCH) break
        }
        if (rechecked > 0) yield* repo.saveCheckpoint({ seq: after, hash: expectedPrev, checked })
        return { ok: true, checked, head: checked === 0 ? null : expectedPrev, rechecked } satisfies Verification
      })

      // A checkpoint holds only while its own record still has the hash it was verified with; rows before it are
      // re-read by a full walk only (the table refuses changes; what bypasses that is what `full` is for).
      const stillHolds = (checkpoint: Checkpoint) =>
        Effect.map(
          repo.at(checkpoint.seq),
          (at) =>
            at !== undefined &&
            at.record.hash === checkpoint.hash &&
            hashOf(at.record, at.record.prevHash) === at.record.hash,
        )

      const verify = Effect.fn("AuditLog.verify")(
        function* (options?: { readonly full?: boolean }) {
          const checkpoint = options?.full === true ? undefined : yield* repo.lastCheckpoint()
          if (checkpoint !== undefined && !(yield* stillHolds(checkpoint))) {
            yield* Effect.logWarning("audit checkpoint no longer matches its record: verifying the whole chain", {
              seq: checkpoint.seq,
            })
            return yield* walk(undefined)
          }
          return yield* walk(checkpoint)
        },
        Effect.catchTag("DbError", unavailable),
      )

      return AuditLog.of({ record, recordEvent, list, verify })
    }),
  )
}
