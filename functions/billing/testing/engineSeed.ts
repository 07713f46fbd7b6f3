import pg from "pg"
import { nextPeriodEnd } from "../Periods.ts"

/**
 * Seeds `count` monthly subscriptions whose period ended before `now` (each due for exactly one renewal at `now`), each
 * customer with a tok_visa method of the test provider, in one statement. Returns the plan's id and the period's end.
 */
export const seedDue = async (schema: string, count: number, now = new Date(), amount = 1500) => {
  const client = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await client.connect()
  try {
    const start = new Date(now.getTime() - 40 * 86_400_000)
    const end = nextPeriodEnd(start, start, "month", 1)
    const plan = await client.query<{ id: string }>(
      `INSERT INTO ${schema}.plans (code, name, amount, currency, interval_unit, interval_count)
       VALUES ('seeded-' || substr(md5(random()::text), 1, 8), 'Seeded', $1, 'EUR', 'month', 1) RETURNING id`,
      [amount],
    )
    await client.query(
      `WITH customers AS (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)),
       methods AS (
         INSERT INTO ${schema}.payment_methods (customer_id, provider, customer_ref, payment_method_ref, brand, last4)
         SELECT id, 'test', 'cus_test_' || id, 'pm_test_tok_visa', 'visa', '4242' FROM customers
         RETURNING customer_id)
       INSERT INTO ${schema}.subscriptions
         (customer_id, plan_id, status, current_period_start, current_period_end, billing_anchor, created_at)
       SELECT customer_id, $2, 'active', $3, $4, $3, $3 FROM methods`,
      [count, plan.rows[0]!.id, start, end],
    )
    return { planId: plan.rows[0]!.id, periodEnd: end }
  } finally {
    await client.end()
  }
}
