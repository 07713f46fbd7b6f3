import type { Migration } from "../../../shared/Migrator.ts"

/** Billing's forward-only migrations, in order; they run in its own schema. Never edit one that has shipped. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0100_billing_items",
    sql: `
      CREATE TABLE billing_items (
        id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
        created_at  timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX billing_items_newest ON billing_items (created_at DESC, id DESC);
    `,
  },
]
