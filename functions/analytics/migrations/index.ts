import type { Migration } from "../../../shared/Migrator.ts"

/** Analytics' forward-only migrations, in order; they run in its own schema. Never edit one that has shipped. */
export const migrations: ReadonlyArray<Migration> = [
  {
    id: "0100_analytics_events",
    sql: `
      -- Raw events, append-only, partitioned by day on occurred_at (Partitions.ts creates each day's partition ahead
      -- and drops those past ANALYTICS_RAW_RETENTION_DAYS); the default partition takes what arrives before its day's.
      -- txid and seq order what the rollup worker folds: it reads only rows of transactions older than every one still
      -- running (txid < the snapshot's xmin), so a row committed late is never skipped (as PgEventBus reads outboxes).
      CREATE SEQUENCE events_seq;
      CREATE TABLE events (
        id           uuid NOT NULL,
        name         text NOT NULL,
        occurred_at  timestamptz NOT NULL,
        received_at  timestamptz NOT NULL DEFAULT now(),
        -- The signed-in caller (ingestion) or the event's actor (platform events); else the client's anonymousId.
        user_id      text,
        anonymous_id text,
        -- Who is counted in unique users: user_id, else 'anon:' || anonymous_id; null counts in no unique.
        actor        text,
        properties   jsonb NOT NULL DEFAULT '{}',
        platform     boolean NOT NULL DEFAULT false,
        txid         xid8 NOT NULL DEFAULT pg_current_xact_id(),
        seq          bigint NOT NULL DEFAULT nextval('events_seq')
      ) PARTITION BY RANGE (occurred_at);
      CREATE TABLE events_default PARTITION OF events DEFAULT;
      CREATE INDEX events_position ON events (txid, seq);
      CREATE INDEX events_name_time ON events (name, occurred_at) INCLUDE (actor);

      -- The unique key of an event id (a partitioned table's unique key must include its partition column, so the id's
      -- is here): an ingestion inserts its ids ON CONFLICT DO NOTHING and only the new ones' events, in one transaction.
      CREATE TABLE event_ids (
        id           uuid PRIMARY KEY,
        occurred_at  timestamptz NOT NULL
      );
      CREATE INDEX event_ids_occurred ON event_ids (occurred_at);

      -- Rollups, kept forever: per granularity ('m'inute, 'h'our, 'd'ay), bucket and event name, the count and the
      -- sketch of unique users (Sketch.ts); property '' is the event as a whole, else one row per (property, value).
      -- The name '$all' rolls up every event (active users).
      CREATE TABLE rollups (
        granularity  "char" NOT NULL CHECK (granularity IN ('m', 'h', 'd')),
        name         text NOT NULL,
        property     text NOT NULL DEFAULT '',
        value        text NOT NULL DEFAULT '',
        bucket       timestamptz NOT NULL,
        count        bigint NOT NULL,
        sketch       bytea NOT NULL,
        PRIMARY KEY (granularity, name, property, value, bucket)
      );
      CREATE INDEX rollups_property_buckets ON rollups (granularity, name, property, bucket) INCLUDE (value, count)
        WHERE property <> '';

      -- How far the rollup worker has folded the raw events: every row at or before (last_txid, last_seq).
      CREATE TABLE rollup_watermark (
        one        boolean PRIMARY KEY DEFAULT true CHECK (one),
        last_txid  xid8 NOT NULL DEFAULT '0',
        last_seq   bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      INSERT INTO rollup_watermark DEFAULT VALUES;

      -- Billing's plans and subscriptions as its events describe them (active subscriptions and MRR in the overview):
      -- a subscription's row moves only forward in its sequence.
      CREATE TABLE billing_plans (
        id              uuid PRIMARY KEY,
        amount          bigint NOT NULL,
        currency        text NOT NULL,
        interval        text NOT NULL,
        interval_count  integer NOT NULL
      );
      CREATE TABLE billing_subscriptions (
        id          uuid PRIMARY KEY,
        customer_id text,
        plan_id     uuid,
        status      text,
        sequence    bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
]
