import type { Migration } from "../../../shared/Migrator.ts"

/**
 * Audit's forward-only migrations, in order. Never edit one that has shipped; add a new one. They run with the
 * search_path set to the service's schema, so names are unqualified here.
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0100_audit_events",
    sql: `
      CREATE TABLE audit_events (
        seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id           text NOT NULL UNIQUE,
        occurred_at  timestamptz NOT NULL,
        recorded_at  timestamptz NOT NULL DEFAULT now(),
        actor_id     text,
        action       text NOT NULL,
        target_type  text,
        target_id    text,
        outcome      text NOT NULL CHECK (outcome IN ('success', 'failure')),
        request_id   text,
        ip           text,
        metadata     jsonb NOT NULL,
        hash         text NOT NULL,
        prev_hash    text NOT NULL
      );
      COMMENT ON TABLE audit_events IS 'append-only audit log; seq is the hash chain order';
      COMMENT ON COLUMN audit_events.hash IS 'SHA-256 hex of the canonical record and prev_hash (AuditRecord.hashOf)';
      CREATE INDEX audit_events_time ON audit_events (occurred_at DESC, seq DESC);
      CREATE INDEX audit_events_actor ON audit_events (actor_id, occurred_at DESC, seq DESC);
      CREATE INDEX audit_events_target ON audit_events (target_id, occurred_at DESC, seq DESC);
      CREATE INDEX audit_events_action ON audit_events (action, occurred_at DESC, seq DESC);

      -- Append-only, whoever asks: UPDATE, DELETE and TRUNCATE are refused even for the table's owner.
      CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
      END
      $fn$;
      CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
      CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();`,
  },
  {
    id: "0101_audit_writer_role",
    sql: `
      -- The least-privilege role the service runs as (AUDIT_DB_ROLE=<schema>_writer): it may read and append the log
      -- and keep its consumer bookkeeping, nothing else (no UPDATE, DELETE or TRUNCATE on audit_events). Created
      -- here when the migrating user may create roles; otherwise (a managed database, the embedded PGlite) this is a
      -- no-op and a DBA runs the same statements.
      DO $do$
      DECLARE
        s text := current_schema();
        r text := current_schema() || '_writer';
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
          EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        EXECUTE format('GRANT %I TO %I', r, current_user);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT SELECT, INSERT ON %I.audit_events TO %I', s, r);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I.inbox, %I.eventbus_offsets, %I.dead_letters, %I.outbox TO %I',
          s, s, s, s, r);
        EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO %I', s, r);
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'audit writer role % not set up here (%): grant it separately', r, SQLERRM;
      END
      $do$;`,
  },
  {
    id: "0102_audit_checkpoints",
    sql: `
      -- Positions of the chain a verification found intact, so the next one re-hashes only what was appended after
      -- the last (AuditLog.verify; ?full=true still walks everything).
      CREATE TABLE audit_checkpoints (
        seq          bigint PRIMARY KEY,
        hash         text NOT NULL,
        checked      bigint NOT NULL,
        verified_at  timestamptz NOT NULL DEFAULT now()
      );
      COMMENT ON TABLE audit_checkpoints IS 'verified chain positions: the record at seq had hash, checked records up to it check';
      DO $do$
      BEGIN
        EXECUTE format('GRANT SELECT, INSERT ON %I.audit_checkpoints TO %I', current_schema(), current_schema() || '_writer');
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'audit writer role not granted audit_checkpoints here (%): grant it separately', SQLERRM;
      END
      $do$;`,
  },
  {
    id: "0103_writer_prunes_kernel_tables",
    sql: `
      -- The retention job (shared/Retention.ts) deletes the kernel's served rows (outbox, inbox, mail); the writer
      -- role audit works as may delete those, never the log. Where the role cannot be granted here, the notice says so.
      DO $do$
      DECLARE
        s text := current_schema();
        r text := current_schema() || '_writer';
      BEGIN
        EXECUTE format('GRANT DELETE ON %I.inbox, %I.outbox TO %I', s, s, r);
        -- The DELETE picks its rows FOR UPDATE, which needs UPDATE on the table too.
        EXECUTE format('GRANT SELECT, UPDATE, DELETE ON %I.mail_outbox TO %I', s, r);
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'audit writer role not granted DELETE on the kernel tables here (%): grant it separately', SQLERRM;
      END
      $do$;`,
  },
  {
    id: "0104_writer_prunes_idempotency_keys",
    sql: `
      -- The kernel's idempotency_keys table (0004) is pruned by the retention job too.
      DO $do$
      BEGIN
        EXECUTE format('GRANT SELECT, UPDATE, DELETE ON %I.idempotency_keys TO %I', current_schema(), current_schema() || '_writer');
      EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'audit writer role not granted idempotency_keys here (%): grant it separately', SQLERRM;
      END
      $do$;`,
  },
]
