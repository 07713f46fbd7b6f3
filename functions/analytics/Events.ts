import { Context, Effect, Layer } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import * as Problem from "../../shared/Problem.ts"
import type { NewEvent } from "./Api.ts"

/** How far ahead of the server's clock an event may be (clients' clocks drift). */
export const MAX_FUTURE_MS = 5 * 60_000

/** An event as it is stored: a client's (ingestion) or a platform event (the bus). */
export interface EventRow {
  readonly id: string
  readonly name: string
  readonly occurredAt: Date
  readonly userId: string | null
  readonly anonymousId: string | null
  readonly properties: Readonly<Record<string, string | number | boolean | null>>
  readonly platform: boolean
}

/** Who an event counts as in unique users: its user, else its anonymous id (apart: `anon:`), else no one. */
export const actorOf = (userId: string | null, anonymousId: string | null): string | null =>
  userId ?? (anonymousId === null ? null : `anon:${anonymousId}`)

/** The window of accepted `occurredAt`: back to the raw retention, ahead by a few minutes. */
export const acceptedWindow = (now: number, retentionDays: number) => ({
  from: now - retentionDays * 86_400_000,
  to: now + MAX_FUTURE_MS,
})

/** What an ingestion answers: events written, and those whose id was seen before (in the batch or earlier). */
export interface Recorded {
  readonly accepted: number
  readonly duplicates: number
}

/** The raw events and their ids' unique key. */
export class Events extends Context.Service<
  Events,
  {
    /**
     * Writes the events whose id is new, in one statement (so one transaction, or the caller's): the ids go to
     * `event_ids` ON CONFLICT DO NOTHING and only the ids it took have their event written. Returns how many.
     */
    insert(rows: ReadonlyArray<EventRow>): Effect.Effect<number, DbError>
    /** A client's batch, validated whole (the window of `occurredAt`), recorded for `userId` (the caller, if any). */
    record(
      events: ReadonlyArray<NewEvent>,
      userId: string | undefined,
    ): Effect.Effect<Recorded, Problem.ValidationFailed | Problem.ServiceUnavailable>
  }
>()("analytics/Events") {
  static readonly layer = (options: { readonly rawRetentionDays: number }) =>
    Layer.effect(
      Events,
      Effect.gen(function* () {
        const db = yield* Db
        const s = db.schema
        const insert = (rows: ReadonlyArray<EventRow>) => {
          // The first of an id within the call; the others are duplicates before the database sees them.
          const seen = new Set<string>()
          const unique = rows.filter((r) => (seen.has(r.id.toLowerCase()) ? false : seen.add(r.id.toLowerCase())))
          if (unique.length === 0) return Effect.succeed(0)
          return Effect.map(
            db.query(
              `WITH input AS (
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::jsonb[],
                                      $7::boolean[])
                   AS t(id, name, occurred_at, user_id, anonymous_id, properties, platform)
               ), fresh AS (
                 INSERT INTO ${s}.event_ids (id, occurred_at) SELECT id, occurred_at FROM input
                 ON CONFLICT DO NOTHING RETURNING id
               ), written AS (
                 INSERT INTO ${s}.events (id, name, occurred_at, user_id, anonymous_id, actor, properties, platform)
                 SELECT i.id, i.name, i.occurred_at, i.user_id, i.anonymous_id,
                        COALESCE(i.user_id, 'anon:' || i.anonymous_id), i.properties, i.platform
                 FROM input i JOIN fresh USING (id)
                 RETURNING 1
               )
               SELECT count(*)::int AS n FROM written`,
              [
                unique.map((r) => r.id),
                unique.map((r) => r.name),
                unique.map((r) => r.occurredAt),
                unique.map((r) => r.userId),
                unique.map((r) => r.anonymousId),
                unique.map((r) => JSON.stringify(r.properties)),
                unique.map((r) => r.platform),
              ],
            ),
            (result) => result[0]!.n as number,
          )
        }
        const unavailable = Problem.unavailable("database unavailable", "analytics is unavailable, retry later")
        return Events.of({
          insert: (rows) => insert(rows).pipe(Effect.withSpan("Events.insert")),
          record: Effect.fn("Events.record")(function* (events, userId) {
            const now = Date.now()
            const window = acceptedWindow(now, options.rawRetentionDays)
            const errors: Array<Problem.FieldError> = []
            const rows = events.map((event, i): EventRow => {
              const occurredAt = event.occurredAt === undefined ? now : Date.parse(event.occurredAt)
              if (occurredAt < window.from || occurredAt > window.to) {
                errors.push({
                  path: `events.${i}.occurredAt`,
                  message: `must be within the last ${options.rawRetentionDays} days and at most 5 minutes ahead`,
                })
              }
              return {
                id: event.id,
                name: event.name,
                occurredAt: new Date(occurredAt),
                userId: userId ?? null,
                anonymousId: event.anonymousId ?? null,
                properties: event.properties ?? {},
                platform: false,
              }
            })
            if (errors.length > 0) {
              return yield* new Problem.ValidationFailed({
                detail: "Dates out of range: nothing was recorded",
                errors: errors.slice(0, Problem.MAX_FIELD_ERRORS),
              })
            }
            const accepted = yield* insert(rows).pipe(Effect.catchTag("DbError", unavailable))
            return { accepted, duplicates: events.length - accepted }
          }),
        })
      }),
    )
}
