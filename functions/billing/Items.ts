import { Context, Effect, Layer } from "effect"
import { Db } from "../../shared/Db.ts"
import * as Problem from "../../shared/Problem.ts"

interface Row {
  readonly id: string
  readonly title: string
  readonly created_at: Date
  readonly [column: string]: unknown
}

const unavailable = Problem.unavailable("database unavailable", "billing is unavailable, retry later")

/** Billing's items over its own table. */
export class Items extends Context.Service<
  Items,
  {
    newest(
      limit: number,
    ): Effect.Effect<ReadonlyArray<{ id: string; title: string; createdAt: string }>, Problem.ServiceUnavailable>
  }
>()("billing/Items") {
  static readonly layer = Layer.effect(
    Items,
    Effect.map(Effect.service(Db), (db) =>
      Items.of({
        newest: (limit) =>
          db
            // Schema-qualified: the pool's sessions have no search_path of the function's schema.
            .query<Row>(
              `SELECT id, title, created_at FROM ${db.schema}.billing_items ORDER BY created_at DESC, id DESC LIMIT $1`,
              [limit],
            )
            .pipe(
              Effect.map((rows) =>
                rows.map((r) => ({ id: r.id, title: r.title, createdAt: r.created_at.toISOString() })),
              ),
              Effect.catchTag("DbError", unavailable),
            ),
      }),
    ),
  )
}
