import { Context, Effect, Layer, Schema } from "effect"
import { Db, UNIQUE_VIOLATION } from "../../shared/Db.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { DEFAULT_LIMIT, decodeTimeCursor, pageOf } from "../../shared/Pagination.ts"
import { Conflict, NotFound, type ServiceUnavailable, type ValidationFailed } from "../../shared/Problem.ts"
import { IntervalUnit, type Plan, type PlanRow, toPlan, unavailable } from "./Model.ts"
import { Amount, Currency } from "./Money.ts"

// Billing's plans: what an administrator sells. A plan's price (amount, currency, interval) never changes once created:
// a new plan replaces it and the old one is archived (`active: false`), so every invoice made from a plan stays true
// to what the customer subscribed to. Each limit below is said once: the contract validates with it (a 400 naming the
// field) and the table's CHECKs (migration 0101) hold the same.

// Control characters other than tab and line breaks have no place in text.
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/u
const noControl = Schema.makeFilter((s: string) => !CONTROL.test(s), {
  message: "must not contain control characters",
})

/** A plan's code: its stable name for people and integrations (`pro-monthly`), unique. */
export const PlanCode = Schema.String.check(
  Schema.isPattern(/^[a-z0-9][a-z0-9_.-]{0,63}$/, {
    message: "must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
  }),
)

/** A plan's name: 1–200 characters, not blank. */
export const PlanName = Schema.String.check(
  Schema.isMaxCodePoints(200, { message: "must be at most 200 characters" }),
  Schema.makeFilter((s: string) => s.trim().length > 0, { message: "must not be blank" }),
  noControl,
)

/** A plan's description: up to 2,000 characters, may be empty. */
export const PlanDescription = Schema.String.check(
  Schema.isMaxCodePoints(2000, { message: "must be at most 2000 characters" }),
  noControl,
)

/** How many interval units one period lasts: 1–365. */
export const IntervalCount = Schema.Number.check(
  Schema.isInt({ message: "must be a whole number" }),
  Schema.isBetween({ minimum: 1, maximum: 365 }, { message: "must be from 1 to 365" }),
)

/** Days of free trial before the first invoice: 0–730. */
export const TrialDays = Schema.Number.check(
  Schema.isInt({ message: "must be a whole number" }),
  Schema.isBetween({ minimum: 0, maximum: 730 }, { message: "must be from 0 to 730" }),
)

/** What an administrator sends to create a plan (`intervalCount` 1, `trialDays` 0 and an empty description unless given). */
export const NewPlan = Schema.Struct({
  code: PlanCode,
  name: PlanName,
  description: Schema.optional(PlanDescription),
  amount: Amount,
  currency: Currency,
  interval: IntervalUnit,
  intervalCount: Schema.optional(IntervalCount),
  trialDays: Schema.optional(TrialDays),
})
export type NewPlan = typeof NewPlan.Type

/** What may change of a plan: never its price, only how it is shown and whether it is sold. */
export const PlanChanges = Schema.Struct({
  name: Schema.optional(PlanName),
  description: Schema.optional(PlanDescription),
  active: Schema.optional(Schema.Boolean),
})
export type PlanChanges = typeof PlanChanges.Type

/** A page of plans. */
export interface PlanPage {
  readonly items: ReadonlyArray<Plan>
  readonly nextCursor: string | null
}

// Rows with their keyset position as Postgres prints it (microseconds): what a cursor carries is what is stored.
const COLUMNS = `id, code, name, description, amount, currency, interval_unit, interval_count, trial_days, active,
  created_at, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS position`
type Stored = PlanRow & { readonly [column: string]: unknown }
type Positioned = Stored & { readonly position: string }

/** Billing's plans: created and archived by administrators, listed for anyone while active. */
export class Plans extends Context.Service<
  Plans,
  {
    /** Creates a plan; a code already in use is a 409. The `billing.plan.created` event goes in the same transaction. */
    create(input: NewPlan): Effect.Effect<Plan, Conflict | ServiceUnavailable>
    /** Changes a plan's name, description or whether it is sold; an unknown id is a 404. */
    update(id: string, changes: PlanChanges): Effect.Effect<Plan, NotFound | ServiceUnavailable>
    /** Active plans, oldest first (the order an administrator created them in), a page after `cursor`. */
    listActive(query: {
      readonly limit?: number | undefined
      readonly cursor?: string | undefined
    }): Effect.Effect<PlanPage, ValidationFailed | ServiceUnavailable>
  }
>()("billing/Plans") {
  /** Plans over billing's `plans` table; events through the outbox. */
  static readonly layer = Layer.effect(
    Plans,
    Effect.gen(function* () {
      const db = yield* Db
      const outbox = yield* Outbox
      const plans = `${db.schema}.plans`

      const eventData = (plan: Plan) => ({
        planId: plan.id,
        code: plan.code,
        name: plan.name,
        amount: plan.amount,
        currency: plan.currency,
        interval: plan.interval,
        intervalCount: plan.intervalCount,
        trialDays: plan.trialDays,
        active: plan.active,
      })

      const create = Effect.fn("Plans.create")(function* (input: NewPlan) {
        return yield* db
          .transaction(
            Effect.gen(function* () {
              const [row] = yield* db.query<Stored>(
                `INSERT INTO ${plans} (code, name, description, amount, currency, interval_unit, interval_count,
                   trial_days)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (code) DO NOTHING
                 RETURNING ${COLUMNS}`,
                [
                  input.code,
                  input.name,
                  input.description ?? "",
                  input.amount,
                  input.currency,
                  input.interval,
                  input.intervalCount ?? 1,
                  input.trialDays ?? 0,
                ],
              )
              if (row === undefined) return yield* new Conflict({ detail: `a plan with the code ${input.code} exists` })
              const plan = toPlan(row)
              yield* outbox.publish({ type: "billing.plan.created", subject: plan.id, data: eventData(plan) })
              return plan
            }),
          )
          .pipe(
            Effect.catchTag(
              "DbError",
              (error): Effect.Effect<never, Conflict | ServiceUnavailable> =>
                error.code === UNIQUE_VIOLATION
                  ? Effect.fail(new Conflict({ detail: `a plan with the code ${input.code} exists` }))
                  : unavailable(error),
            ),
          )
      })

      const update = Effect.fn("Plans.update")(function* (id: string, changes: PlanChanges) {
        return yield* db
          .transaction(
            Effect.gen(function* () {
              const [before] = yield* db.query<Stored>(`SELECT ${COLUMNS} FROM ${plans} WHERE id = $1 FOR UPDATE`, [id])
              if (before === undefined) return yield* new NotFound({ detail: `no plan ${id}` })
              const changed = (Object.keys(changes) as Array<keyof PlanChanges>).filter(
                (key) => changes[key] !== undefined && changes[key] !== toPlan(before)[key],
              )
              if (changed.length === 0) return toPlan(before)
              const [row] = yield* db.query<Stored>(
                `UPDATE ${plans} SET name = COALESCE($2, name), description = COALESCE($3, description),
                   active = COALESCE($4, active)
                 WHERE id = $1 RETURNING ${COLUMNS}`,
                [id, changes.name ?? null, changes.description ?? null, changes.active ?? null],
              )
              const plan = toPlan(row!)
              yield* outbox.publish({
                type: "billing.plan.updated",
                subject: plan.id,
                data: { ...eventData(plan), changes: changed },
              })
              return plan
            }),
          )
          .pipe(Effect.catchTag("DbError", unavailable))
      })

      const listActive = Effect.fn("Plans.listActive")(function* (query: {
        readonly limit?: number | undefined
        readonly cursor?: string | undefined
      }) {
        const limit = query.limit ?? DEFAULT_LIMIT
        const after = query.cursor === undefined ? undefined : yield* decodeTimeCursor(query.cursor)
        const rows = yield* db
          .query<Positioned>(
            after === undefined
              ? `SELECT ${COLUMNS} FROM ${plans} WHERE active ORDER BY created_at, id LIMIT $1`
              : `SELECT ${COLUMNS} FROM ${plans} WHERE active AND (created_at, id) > ($2::timestamptz, $3::uuid)
                 ORDER BY created_at, id LIMIT $1`,
            after === undefined ? [limit + 1] : [limit + 1, after.at, after.id],
          )
          .pipe(Effect.catchTag("DbError", unavailable))
        const page = pageOf(rows, limit, (row) => ({ at: row.position, id: row.id }))
        return { items: page.items.map(toPlan), nextCursor: page.nextCursor }
      })

      return Plans.of({ create, update, listActive })
    }),
  )
}
