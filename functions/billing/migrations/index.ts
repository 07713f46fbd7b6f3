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
  {
    // The scaffold's items go; billing's own tables come. Money is integer minor units (bigint) with the currency's
    // exponent from Money.ts; times are UTC timestamptz. What the application promises is also what the database
    // holds: one invoice per subscription and period (the unique key, not timing), gapless numbers per year (a
    // counter row updated in the transaction that finalizes), statuses from fixed lists.
    id: "0101_billing",
    sql: `
      DROP TABLE billing_items;

      CREATE TABLE plans (
        id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        code            text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
        name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
        description     text NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
        amount          bigint NOT NULL CHECK (amount >= 0),
        currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        interval_unit   text NOT NULL CHECK (interval_unit IN ('day', 'week', 'month', 'year')),
        interval_count  integer NOT NULL CHECK (interval_count BETWEEN 1 AND 365),
        trial_days      integer NOT NULL DEFAULT 0 CHECK (trial_days BETWEEN 0 AND 730),
        active          boolean NOT NULL DEFAULT true,
        created_at      timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX plans_active ON plans (created_at, id) WHERE active;

      -- One saved payment method per customer (a PUT replaces it).
      CREATE TABLE payment_methods (
        customer_id          uuid PRIMARY KEY,
        provider             text NOT NULL CHECK (provider IN ('test', 'stripe')),
        customer_ref         text NOT NULL,
        payment_method_ref   text NOT NULL,
        brand                text NOT NULL,
        last4                text NOT NULL,
        updated_at           timestamptz NOT NULL DEFAULT now()
      );

      -- Test clocks (BILLING_TEST_CLOCKS): a subscription on a clock lives on its frozen time.
      CREATE TABLE test_clocks (
        id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        frozen_time  timestamptz NOT NULL,
        created_by   uuid NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE subscriptions (
        id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        customer_id           uuid NOT NULL,
        plan_id               uuid NOT NULL REFERENCES plans (id),
        status                text NOT NULL
                              CHECK (status IN ('trialing', 'active', 'past_due', 'canceled', 'incomplete')),
        current_period_start  timestamptz NOT NULL,
        current_period_end    timestamptz NOT NULL,
        trial_end             timestamptz,
        cancel_at_period_end  boolean NOT NULL DEFAULT false,
        canceled_at           timestamptz,
        test_clock_id         uuid REFERENCES test_clocks (id),
        -- The sequence number of the subscription's last billing.* event (each event of it carries the next one).
        seq                   bigint NOT NULL DEFAULT 0,
        created_at            timestamptz NOT NULL DEFAULT now(),
        CHECK (current_period_end > current_period_start),
        CHECK ((status = 'canceled') = (canceled_at IS NOT NULL))
      );
      CREATE INDEX subscriptions_customer ON subscriptions (customer_id, created_at DESC, id DESC);
      CREATE INDEX subscriptions_newest ON subscriptions (created_at DESC, id DESC);
      -- What the renewal sweep looks for: live subscriptions on wall time whose period has ended.
      CREATE INDEX subscriptions_due ON subscriptions (current_period_end)
        WHERE status IN ('trialing', 'active', 'past_due') AND test_clock_id IS NULL;
      CREATE INDEX subscriptions_clock ON subscriptions (test_clock_id, current_period_end)
        WHERE test_clock_id IS NOT NULL;

      -- Gapless invoice numbers: the last number given in each year, taken and bumped in the finalizing transaction.
      CREATE TABLE invoice_numbers (
        year  integer PRIMARY KEY,
        last  bigint NOT NULL CHECK (last >= 0)
      );

      CREATE TABLE invoices (
        id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        number           text UNIQUE,
        subscription_id  uuid NOT NULL REFERENCES subscriptions (id),
        customer_id      uuid NOT NULL,
        status           text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
        reason           text NOT NULL CHECK (reason IN ('subscription_create', 'subscription_cycle')),
        currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        lines            jsonb NOT NULL,
        subtotal         bigint NOT NULL,
        total            bigint NOT NULL CHECK (total >= 0),
        amount_paid      bigint NOT NULL DEFAULT 0 CHECK (amount_paid >= 0),
        amount_due       bigint NOT NULL CHECK (amount_due >= 0),
        period_start     timestamptz NOT NULL,
        period_end       timestamptz NOT NULL,
        attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        next_attempt_at  timestamptz,
        paid_at          timestamptz,
        created_at       timestamptz NOT NULL DEFAULT now(),
        -- Exactly one invoice per subscription and period, whoever renews it and however often.
        UNIQUE (subscription_id, period_start),
        CHECK (period_end > period_start),
        CHECK ((status = 'draft') = (number IS NULL)),
        CHECK ((status = 'paid') = (paid_at IS NOT NULL)),
        CHECK (amount_paid <= total)
      );
      CREATE INDEX invoices_customer ON invoices (customer_id, created_at DESC, id DESC);
      CREATE INDEX invoices_newest ON invoices (created_at DESC, id DESC);
      CREATE INDEX invoices_subscription ON invoices (subscription_id, period_start DESC);
      -- What the dunning sweep looks for: open invoices whose next attempt is due.
      CREATE INDEX invoices_retry_due ON invoices (next_attempt_at) WHERE status = 'open' AND next_attempt_at IS NOT NULL;

      -- Each payment attempt of an invoice, written before the provider is called: a crash after the call finds the
      -- attempt and repeats it under the same idempotency key (the same charge at the provider, never a second one).
      CREATE TABLE payment_attempts (
        invoice_id       uuid NOT NULL REFERENCES invoices (id),
        attempt          integer NOT NULL CHECK (attempt >= 1),
        provider         text NOT NULL,
        idempotency_key  text NOT NULL UNIQUE,
        amount           bigint NOT NULL CHECK (amount >= 0),
        currency         text NOT NULL,
        outcome          text CHECK (outcome IN ('paid', 'declined', 'unavailable')),
        reason           text,
        reference        text,
        created_at       timestamptz NOT NULL DEFAULT now(),
        decided_at       timestamptz,
        PRIMARY KEY (invoice_id, attempt)
      );

      -- Prorations of plan changes (and credit left over from an invoice whose credits exceeded its charges), waiting
      -- for the subscription's next invoice, which takes them as lines in the transaction that makes it.
      CREATE TABLE pending_lines (
        id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        subscription_id  uuid NOT NULL REFERENCES subscriptions (id),
        description      text NOT NULL,
        amount           bigint NOT NULL,
        currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
        quantity         integer NOT NULL DEFAULT 1 CHECK (quantity >= 1),
        period_start     timestamptz NOT NULL,
        period_end       timestamptz NOT NULL,
        invoice_id       uuid REFERENCES invoices (id),
        created_at       timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX pending_lines_open ON pending_lines (subscription_id, created_at) WHERE invoice_id IS NULL;

      -- The built-in test provider's ledger: one row per idempotency key, as a real provider keeps one (a repeated
      -- charge under the same key answers the first outcome and charges nothing more). Tests count charges here.
      CREATE TABLE test_provider_charges (
        idempotency_key  text PRIMARY KEY,
        customer_ref     text NOT NULL,
        amount           bigint NOT NULL CHECK (amount >= 0),
        currency         text NOT NULL,
        outcome          text NOT NULL CHECK (outcome IN ('paid', 'declined')),
        reason           text,
        reference        text NOT NULL,
        created_at       timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    // A subscription's billing cycle anchor (Periods.ts): its period ends are anchor + k × the plan's interval, each
    // computed from the anchor, so a cycle anchored on the 31st comes back to the 31st after a short month (the
    // current period alone cannot tell Jan 31 from Jan 28 once February clamped it). Set at creation to the first
    // paid period's start (the trial's end when there is a trial, else the period start) by a trigger when the insert
    // does not give it; a plan change to another interval resets it to the change's time.
    id: "0102_billing_anchor",
    sql: `
      ALTER TABLE subscriptions ADD COLUMN billing_anchor timestamptz;
      UPDATE subscriptions SET billing_anchor = COALESCE(trial_end, current_period_start);
      ALTER TABLE subscriptions ALTER COLUMN billing_anchor SET NOT NULL;
      CREATE FUNCTION subscriptions_default_anchor() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF NEW.billing_anchor IS NULL THEN
          NEW.billing_anchor := COALESCE(NEW.trial_end, NEW.current_period_start);
        END IF;
        RETURN NEW;
      END
      $fn$;
      CREATE TRIGGER subscriptions_default_anchor BEFORE INSERT ON subscriptions
        FOR EACH ROW EXECUTE FUNCTION subscriptions_default_anchor();
    `,
  },
  {
    // The payment method an attempt charges, written with the attempt: an undecided attempt (its outcome unknown after
    // a crash or an unreachable provider) is repeated under its key with exactly these, never with a method the
    // customer saved since (the same key with other parameters is refused by the provider). NULL: no method (declined
    // without the provider), or an attempt written before this migration (repeated with the customer's current one).
    // The test provider's ledger keeps the method a key charged too, to refuse the key with another, as Stripe does.
    id: "0103_billing_attempt_method",
    sql: `
      ALTER TABLE payment_attempts ADD COLUMN customer_ref text, ADD COLUMN payment_method_ref text;
      ALTER TABLE test_provider_charges ADD COLUMN payment_method_ref text;
    `,
  },
]
