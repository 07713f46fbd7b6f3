import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { Db, type DbOptions } from "../../../shared/Db.ts"
import { Notifier } from "../../../shared/Notifier.ts"
import { Outbox } from "../../../shared/Outbox.ts"
import { type Running, start } from "../../../shared/testing/harness.ts"
import { Lifecycle, type LifecycleOptions } from "../Lifecycle.ts"
import { manifest } from "../module.ts"
import { PaymentProvider } from "../Provider.ts"
import { ReceiptRecipients } from "../Receipts.ts"
import * as TestProvider from "../TestProvider.ts"
import { billingDb, billingDbOptions } from "./engineDb.ts"

export type EngineServices = Db | Lifecycle | PaymentProvider | Outbox | Notifier

/** Billing's engine on a database (a fresh schema unless `options` name one), with the test provider. */
export const startEngine = async (
  settings: {
    readonly db?: DbOptions
    readonly engine?: Partial<LifecycleOptions>
    readonly emails?: Readonly<Record<string, string>>
    /** Wraps the test provider (to inject crashes and outages). */
    readonly provider?: (provider: PaymentProvider["Service"]) => PaymentProvider["Service"]
  } = {},
) => {
  const dbOptions = settings.db ?? billingDbOptions()
  const providerLayer = Layer.effect(
    PaymentProvider,
    Effect.map(TestProvider.make, (provider) => (settings.provider ? settings.provider(provider) : provider)),
  )
  const layer = Lifecycle.layer({ retryScheduleDays: [1, 3, 5], ...settings.engine }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        providerLayer,
        Outbox.layer(manifest),
        Notifier.layer,
        ReceiptRecipients.local(settings.emails ?? {}),
      ),
    ),
    Layer.provideMerge(billingDb(dbOptions)),
  )
  const running: Running<EngineServices> = await start(layer)
  const run = <A, E>(effect: Effect.Effect<A, E, EngineServices>) =>
    Effect.runPromise(Effect.provideContext(effect, running.context))
  const runExit = <A, E>(effect: Effect.Effect<A, E, EngineServices>) =>
    Effect.runPromiseExit(Effect.provideContext(effect, running.context))
  const engine = await run(Effect.service(Lifecycle))
  const db = await run(Effect.service(Db))
  const q = <A = Record<string, unknown>>(sql: string, params: ReadonlyArray<unknown> = []) =>
    run(db.query(sql.replaceAll("$S.", `${db.schema}.`), params)) as Promise<Array<A>>
  return { running, run, runExit, engine, db, schema: db.schema, dbOptions, q, close: () => running.close() }
}

export type EngineUnderTest = Awaited<ReturnType<typeof startEngine>>

/** A plan straight into the table (plans are the API helper's; the engine only reads them). */
export const createPlan = async (
  t: EngineUnderTest,
  plan: {
    readonly amount: number
    readonly currency?: string
    readonly interval?: "day" | "week" | "month" | "year"
    readonly intervalCount?: number
    readonly trialDays?: number
    readonly active?: boolean
  },
): Promise<string> => {
  const rows = await t.q<{ id: string }>(
    `INSERT INTO $S.plans (code, name, amount, currency, interval_unit, interval_count, trial_days, active)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
    [
      `plan-${randomUUID().slice(0, 8)}`,
      "Pro",
      plan.amount,
      plan.currency ?? "EUR",
      plan.interval ?? "month",
      plan.intervalCount ?? 1,
      plan.trialDays ?? 0,
      plan.active ?? true,
    ],
  )
  return rows[0]!.id
}

/** Saves a test token as a customer's payment method (what PUT /payment-method does). */
export const savePaymentMethod = async (t: EngineUnderTest, customerId: string, token: string) => {
  const provider = await t.run(Effect.service(PaymentProvider))
  const saved = await Effect.runPromise(provider.savePaymentMethod(customerId, token))
  if (!("customerRef" in saved)) throw new Error(`token ${token} not saved: ${JSON.stringify(saved)}`)
  await t.q(
    `INSERT INTO $S.payment_methods (customer_id, provider, customer_ref, payment_method_ref, brand, last4)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (customer_id) DO UPDATE SET provider = EXCLUDED.provider, customer_ref = EXCLUDED.customer_ref,
       payment_method_ref = EXCLUDED.payment_method_ref, brand = EXCLUDED.brand, last4 = EXCLUDED.last4`,
    [customerId, saved.provider, saved.customerRef, saved.paymentMethodRef, saved.brand, saved.last4],
  )
}

/** The billing.* events of a subscription in the outbox, in sequence order. */
export const eventsOf = async (t: EngineUnderTest, subscriptionId: string) =>
  (await t.q<{ event: unknown }>(`SELECT event FROM $S.outbox WHERE key = $1`, [subscriptionId]))
    .map(
      (row) =>
        (typeof row.event === "string" ? JSON.parse(row.event) : row.event) as {
          type: string
          data: Record<string, unknown> & { sequence: number }
        },
    )
    .sort((a, b) => a.data.sequence - b.data.sequence)
