import type { Migration } from "../../../shared/Migrator.ts"

/** Identity's forward-only migrations, in order. Never edit one that has shipped; add a new one. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0100_users",
    sql: `
      CREATE TABLE users (
        id             uuid PRIMARY KEY,
        email          text NOT NULL,
        name           text NOT NULL,
        email_verified boolean NOT NULL DEFAULT false,
        status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled', 'deleted')),
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX users_email_lower ON users (lower(email));`,
  },
  {
    id: "0101_credentials",
    sql: `
      -- argon2id PHC string; null for accounts that only sign in through an external identity provider.
      ALTER TABLE users ADD COLUMN password_hash text;`,
  },
  {
    id: "0102_email_tokens",
    sql: `
      -- Single-use tokens sent by mail; only their SHA-256 is stored.
      CREATE TABLE email_tokens (
        token_hash text PRIMARY KEY,
        user_id    uuid NOT NULL REFERENCES users (id),
        purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
        expires_at timestamptz NOT NULL,
        used_at    timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX email_tokens_user ON email_tokens (user_id, purpose);`,
  },
  {
    id: "0103_status_version",
    sql: `
      -- Counts the account's status changes: authz orders identity's reports of them by it (the last-administrator
      -- guard), and a status change is written only if no other one came between.
      ALTER TABLE users ADD COLUMN status_version bigint NOT NULL DEFAULT 0;`,
  },
  {
    id: "0104_email_tokens_expires_at",
    sql: `
      -- Retention (EmailTokens.ts retentionRules) finds expired tokens, oldest first.
      CREATE INDEX email_tokens_expires_at ON email_tokens (expires_at);`,
  },
]
