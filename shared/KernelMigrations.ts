import type { Migration } from "./Migrator.ts"

// The kernel's own tables, in every function's schema. Kept free of runtime imports: manifests (module.ts)
// import this file, and the gateway reads every manifest.

/** Kernel tables every function that publishes or consumes events gets in its own schema. */
export const outboxMigrations: ReadonlyArray<Migration> = [
  {
    id: "0000_kernel_outbox",
    sql: `
      CREATE TABLE outbox (
        seq          bigserial PRIMARY KEY,
        id           uuid NOT NULL UNIQUE,
        topic        text NOT NULL,
        key          text,
        event        jsonb NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
      );
      CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
      CREATE TABLE inbox (
        consumer     text NOT NULL,
        event_id     text NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
      );`,
  },
]

/**
 * Kernel tables of the embedded bus, applied after `Outbox.migrations` in every service whatever the bus in use:
 * the outbox learns the id of the transaction that wrote each row, and consumers get their positions and dead letters.
 */
export const eventBusMigrations: ReadonlyArray<Migration> = [
  {
    id: "0001_kernel_eventbus",
    sql: `
      ALTER TABLE outbox ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
      CREATE INDEX outbox_txid_seq ON outbox (txid, seq);
      CREATE TABLE eventbus_offsets (
        group_id   text NOT NULL,
        topic      text NOT NULL,
        last_txid  xid8 NOT NULL DEFAULT '0',
        last_seq   bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (group_id, topic)
      );
      CREATE TABLE dead_letters (
        id         bigserial PRIMARY KEY,
        group_id   text NOT NULL,
        topic      text NOT NULL,
        event_id   text,
        source_seq bigint NOT NULL,
        payload    jsonb NOT NULL,
        reason     text NOT NULL,
        error      text NOT NULL,
        attempts   integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
]

/**
 * Kernel table of the Notifier: mails written in the caller's transaction and delivered by the MailSender loop
 * (`next_attempt_at` doubles as the claim lease and the retry time); sent rows are the dev mailbox.
 */
export const mailMigrations: ReadonlyArray<Migration> = [
  {
    id: "0002_kernel_mail",
    sql: `
      CREATE TABLE mail_outbox (
        id              uuid PRIMARY KEY,
        "to"            text NOT NULL,
        subject         text NOT NULL,
        text            text NOT NULL,
        html            text NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
        attempts        integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        sent_at         timestamptz,
        last_error      text
      );
      CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
      CREATE INDEX mail_outbox_sent ON mail_outbox (created_at DESC) WHERE sent_at IS NOT NULL;`,
  },
]

/** Indexes the retention job (shared/Retention.ts) finds the kernel's prunable rows by, oldest first. */
export const retentionMigrations: ReadonlyArray<Migration> = [
  {
    id: "0003_kernel_retention",
    sql: `
      CREATE INDEX outbox_created_at ON outbox (created_at);
      CREATE INDEX inbox_processed_at ON inbox (processed_at);
      CREATE INDEX mail_outbox_created_at ON mail_outbox (created_at);`,
  },
]

/**
 * The answers of creating requests sent with an `Idempotency-Key` (shared/Idempotency.ts), per caller and key, kept
 * 24 hours (the retention job): the same key and request again gets the stored answer, another request a 422.
 */
export const idempotencyMigrations: ReadonlyArray<Migration> = [
  {
    id: "0004_kernel_idempotency",
    sql: `
      CREATE TABLE idempotency_keys (
        caller       text NOT NULL,
        key          text NOT NULL,
        request_hash text NOT NULL,
        response     jsonb,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (caller, key)
      );
      CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);`,
  },
]

/** Every kernel migration, in order; a function's manifest lists these before its own. */
export const kernelMigrations: ReadonlyArray<Migration> = [
  ...outboxMigrations,
  ...eventBusMigrations,
  ...mailMigrations,
  ...retentionMigrations,
  ...idempotencyMigrations,
]
