// Billing: the plans (created with an Idempotency-Key, archived with `active: false`), the caller's own
// subscriptions and invoices, and everyone's with the `.read.any` permissions (filtered by customer and status).
import { useState } from "preact/hooks"
import { ok } from "../../../../../client/index.ts"
import { useAccess } from "../access.ts"
import { api } from "../session.ts"
import type { Item } from "../types.ts"
import {
  AnyOf,
  Busy,
  Confirm,
  Field,
  money,
  onSubmit,
  PagedTable,
  ProblemBox,
  useAction,
  useLoad,
  usePages,
  value,
  When,
} from "../ui.tsx"

const CURRENCIES = ["EUR", "USD", "GBP", "CHF", "JPY", "KRW", "BHD", "JOD", "KWD", "OMR", "TND"] as const
type Currency = (typeof CURRENCIES)[number]
const INTERVALS = ["day", "week", "month", "year"] as const
type Plan = Item<"/api/v1/billing/plans", "get">
type Subscription = Item<"/api/v1/billing/subscriptions", "get">
type Invoice = Item<"/api/v1/billing/invoices", "get">

/** An amount typed in major units ("9.99") in the currency's minor unit, by its exponent (JPY 0, KWD 3). */
export const minorUnits = (major: string, currency: string): number => {
  const digits =
    new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2
  return Math.round(Number(major) * 10 ** digits)
}

/** A number field's value, unset when empty (the API then applies its default or names what is missing). */
const optionalNumber = (text: string) => (text === "" ? undefined : Number(text))

const NewPlan = ({ done }: { readonly done: () => void }) => {
  // One key per plan being written: a retried submit of the same form is the same plan.
  const [key, setKey] = useState(() => crypto.randomUUID())
  const create = useAction(async (form: HTMLFormElement) => {
    const currency = value(form, "currency") as Currency
    const amount = value(form, "amount")
    await ok(
      api.POST("/api/v1/billing/plans", {
        params: { header: { "idempotency-key": key } },
        body: {
          code: value(form, "code"),
          name: value(form, "name"),
          description: value(form, "description") || undefined,
          // An empty amount is sent as missing, so the API's own validation names it.
          amount: (amount === "" ? undefined : minorUnits(amount, currency)) as number,
          currency,
          interval: value(form, "interval") as (typeof INTERVALS)[number],
          intervalCount: optionalNumber(value(form, "intervalCount")),
          trialDays: optionalNumber(value(form, "trialDays")),
        },
      }),
    )
    form.reset()
    // A reset select goes back to its first option (Preact sets `selected` as a property, not the default).
    ;(form.elements.namedItem("interval") as HTMLSelectElement).value = "month"
    setKey(crypto.randomUUID())
  })
  return (
    <form
      class="card"
      aria-label="New plan"
      noValidate
      onSubmit={onSubmit(async (form) => (await create.run(form)) && done())}
    >
      <h2>New plan</h2>
      <Field label="Code">
        <input name="code" autocomplete="off" required />
      </Field>
      <Field label="Name">
        <input name="name" autocomplete="off" required />
      </Field>
      <Field label="Description">
        <input name="description" autocomplete="off" />
      </Field>
      <Field label="Amount" hint="In the currency's major unit, e.g. 9.99">
        <input name="amount" inputMode="decimal" autocomplete="off" />
      </Field>
      <Field label="Currency">
        <select name="currency">
          {CURRENCIES.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Interval">
        <select name="interval">
          {INTERVALS.map((i) => (
            <option key={i} value={i} selected={i === "month"}>
              {i}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Interval count">
        <input name="intervalCount" type="number" defaultValue="1" />
      </Field>
      <Field label="Trial days">
        <input name="trialDays" type="number" min="0" defaultValue="0" />
      </Field>
      <Busy busy={create.busy} type="submit">
        Create plan
      </Busy>
      <ProblemBox error={create.error} />
    </form>
  )
}

const Plans = () => {
  const { can } = useAccess()
  const pages = usePages([])
  const list = useLoad(
    () =>
      ok(
        api.GET("/api/v1/billing/plans", {
          params: { query: pages.query(25) },
        }),
      ),
    [pages.cursor],
  )
  const mayUpdate = can("billing.plan.update")
  return (
    <section aria-label="Plans">
      <h2>Plans</h2>
      {can("billing.plan.create") ? <NewPlan done={list.reload} /> : null}
      <PagedTable
        list={list}
        pages={pages}
        what="plans"
        caption="Active plans"
        head={["Code", "Name", "Price", "Every", "Trial", ...(mayUpdate ? ["Actions"] : [])]}
        empty="No active plans."
        row={(p: Plan) => (
          <tr key={p.id}>
            <td>
              <code>{p.code}</code>
            </td>
            <td>
              {p.name}
              {p.description ? <small class="muted"> — {p.description}</small> : null}
            </td>
            <td>{money(Number(p.amount), p.currency)}</td>
            <td>{Number(p.intervalCount) === 1 ? p.interval : `${p.intervalCount} ${p.interval}s`}</td>
            <td>{Number(p.trialDays) > 0 ? `${p.trialDays} days` : "—"}</td>
            {mayUpdate ? (
              <td>
                <Confirm
                  label="Archive"
                  question={`Archive ${p.code}?`}
                  action={() =>
                    ok(
                      api.PATCH("/api/v1/billing/plans/{id}", {
                        params: { path: { id: p.id } },
                        body: { active: false },
                      }),
                    )
                  }
                  done={list.reload}
                />
              </td>
            ) : null}
          </tr>
        )}
      />
    </section>
  )
}

/** A subscription's cancel actions: at the end of its period (the default) or now. */
const Cancel = ({ s, done }: { readonly s: Subscription; readonly done: () => void }) => {
  const cancel = useAction((atPeriodEnd: boolean) =>
    ok(
      api.POST("/api/v1/billing/subscriptions/{id}/cancel", { params: { path: { id: s.id } }, body: { atPeriodEnd } }),
    ),
  )
  if (s.status === "canceled") return <span>—</span>
  return (
    <>
      <span class="actions">
        {s.cancelAtPeriodEnd ? (
          <span>Ends at period end</span>
        ) : (
          <Busy
            busy={cancel.busy}
            type="button"
            class="secondary"
            onClick={async () => (await cancel.run(true)) && done()}
          >
            Cancel at period end
          </Busy>
        )}
        <Busy busy={cancel.busy} type="button" class="danger" onClick={async () => (await cancel.run(false)) && done()}>
          Cancel now
        </Busy>
      </span>
      <ProblemBox error={cancel.error} />
    </>
  )
}

const InvoiceActions = ({ i, done }: { readonly i: Invoice; readonly done: () => void }) => {
  const { can } = useAccess()
  const pay = useAction(() => ok(api.POST("/api/v1/billing/invoices/{id}/pay", { params: { path: { id: i.id } } })))
  const payable = i.status === "open"
  return (
    <>
      <span class="actions">
        {payable ? (
          <Busy busy={pay.busy} type="button" onClick={async () => (await pay.run()) && done()}>
            Pay
          </Busy>
        ) : null}
        {payable && can("billing.invoice.update.any") ? (
          <Confirm
            label="Void"
            question={`Void ${i.number ?? "this invoice"}?`}
            action={() => ok(api.POST("/api/v1/billing/invoices/{id}/void", { params: { path: { id: i.id } } }))}
            done={done}
          />
        ) : null}
        {payable ? null : <span>—</span>}
      </span>
      <ProblemBox error={pay.error} />
    </>
  )
}

interface Filters {
  readonly customerId?: string
  readonly status?: string
}

/** The customer and status filter of an "everyone's" list. */
const FilterForm = ({
  label,
  statuses,
  apply,
}: {
  readonly label: string
  readonly statuses: ReadonlyArray<string>
  readonly apply: (filters: Filters) => void
}) => (
  <form
    class="card"
    aria-label={label}
    onSubmit={onSubmit((form) => {
      const entries = { customerId: value(form, "customerId"), status: value(form, "status") }
      apply(Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== "")))
    })}
  >
    <Field label="Customer id">
      <input name="customerId" autocomplete="off" />
    </Field>
    <Field label="Status">
      <AnyOf name="status" options={statuses} />
    </Field>
    <button type="submit">Filter</button>
  </form>
)

const subscriptionRow = (reload: () => void) => (s: Subscription) => (
  <tr key={s.id}>
    <td>
      <code>{s.id}</code>
    </td>
    <td>
      <code>{s.customerId}</code>
    </td>
    <td>
      <code>{s.planId}</code>
    </td>
    <td>{s.status}</td>
    <td>
      <When at={s.currentPeriodEnd} />
    </td>
    <td>
      <Cancel s={s} done={reload} />
    </td>
  </tr>
)

const invoiceRow = (reload: () => void) => (i: Invoice) => (
  <tr key={i.id}>
    <td>{i.number ?? "—"}</td>
    <td>
      <code>{i.customerId}</code>
    </td>
    <td>{i.status}</td>
    <td>{money(Number(i.total), i.currency)}</td>
    <td>{money(Number(i.amountDue), i.currency)}</td>
    <td>
      <When at={i.createdAt} />
    </td>
    <td>
      <InvoiceActions i={i} done={reload} />
    </td>
  </tr>
)

const SUBSCRIPTION_HEAD = ["Id", "Customer", "Plan", "Status", "Period ends", "Actions"]
const INVOICE_HEAD = ["Number", "Customer", "Status", "Total", "Due", "Created", "Actions"]

/** The caller's own subscriptions and invoices, or everyone's (`all`) with filters. */
const Subscriptions = ({ all }: { readonly all: boolean }) => {
  const [filters, setFilters] = useState<Filters>({})
  const pages = usePages([filters, all])
  const list = useLoad(() => {
    const query = pages.query(25)
    return all
      ? ok(api.GET("/api/v1/billing/subscriptions", { params: { query: { ...query, ...(filters as object) } } }))
      : ok(api.GET("/api/v1/billing/subscriptions/me", { params: { query } }))
  }, [filters, all, pages.cursor])
  return (
    <section aria-label={all ? "All subscriptions" : "My subscriptions"}>
      <h2>{all ? "All subscriptions" : "My subscriptions"}</h2>
      {all ? (
        <FilterForm
          label="Filter subscriptions"
          statuses={["trialing", "active", "past_due", "canceled", "incomplete"]}
          apply={setFilters}
        />
      ) : null}
      <PagedTable
        list={list}
        pages={pages}
        what="subscriptions"
        caption={all ? "All subscriptions" : "My subscriptions"}
        head={SUBSCRIPTION_HEAD}
        empty="No subscriptions."
        row={subscriptionRow(list.reload)}
      />
    </section>
  )
}

const Invoices = ({ all }: { readonly all: boolean }) => {
  const [filters, setFilters] = useState<Filters>({})
  const pages = usePages([filters, all])
  const list = useLoad(() => {
    const query = pages.query(25)
    return all
      ? ok(api.GET("/api/v1/billing/invoices", { params: { query: { ...query, ...(filters as object) } } }))
      : ok(api.GET("/api/v1/billing/invoices/me", { params: { query } }))
  }, [filters, all, pages.cursor])
  return (
    <section aria-label={all ? "All invoices" : "My invoices"}>
      <h2>{all ? "All invoices" : "My invoices"}</h2>
      {all ? (
        <FilterForm
          label="Filter invoices"
          statuses={["draft", "open", "paid", "void", "uncollectible"]}
          apply={setFilters}
        />
      ) : null}
      <PagedTable
        list={list}
        pages={pages}
        what="invoices"
        caption={all ? "All invoices" : "My invoices"}
        head={INVOICE_HEAD}
        empty="No invoices."
        row={invoiceRow(list.reload)}
      />
    </section>
  )
}

/** "Mine" or "everyone's", offered only with the permission to read everyone's. */
const Scope = ({
  label,
  all,
  set,
}: {
  readonly label: string
  readonly all: boolean
  readonly set: (all: boolean) => void
}) => (
  <fieldset class="scope">
    <legend>{label}</legend>
    <label>
      <input type="radio" checked={!all} onChange={() => set(false)} /> Mine
    </label>
    <label>
      <input type="radio" checked={all} onChange={() => set(true)} /> Everyone's
    </label>
  </fieldset>
)

export const Billing = () => {
  const { can } = useAccess()
  const anySubscriptions = can("billing.subscription.read.any")
  const anyInvoices = can("billing.invoice.read.any")
  const [allSubscriptions, setAllSubscriptions] = useState(false)
  const [allInvoices, setAllInvoices] = useState(false)
  return (
    <>
      <Plans />
      {anySubscriptions ? <Scope label="Subscriptions shown" all={allSubscriptions} set={setAllSubscriptions} /> : null}
      <Subscriptions all={anySubscriptions && allSubscriptions} />
      {anyInvoices ? <Scope label="Invoices shown" all={allInvoices} set={setAllInvoices} /> : null}
      <Invoices all={anyInvoices && allInvoices} />
    </>
  )
}
