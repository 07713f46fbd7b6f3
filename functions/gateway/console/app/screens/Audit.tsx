// The audit log: newest first, filtered by actor, action, target and time, paged by cursor; and the check of its hash
// chain, with its result.
import { useState } from "preact/hooks"
import { ok } from "../../../../../client/index.ts"
import { useAccess } from "../access.ts"
import { api } from "../session.ts"
import type { Answer } from "../types.ts"
import { Busy, Field, onSubmit, PagedTable, ProblemBox, useAction, useLoad, usePages, value, When } from "../ui.tsx"

interface Filters {
  readonly actorId?: string
  readonly action?: string
  readonly targetId?: string
  readonly from?: string
  readonly to?: string
}

/** A `datetime-local` value (the reader's time zone) as RFC 3339 UTC; empty stays unset. */
const instant = (local: string) => (local === "" ? undefined : new Date(local).toISOString())

const Verify = () => {
  const [result, setResult] = useState<Answer<"/api/v1/audit/verify", "get">>()
  const verify = useAction(async () => setResult(await ok(api.GET("/api/v1/audit/verify"))))
  return (
    <section aria-label="Verify the chain">
      <h2>Hash chain</h2>
      <div class="actions">
        <Busy busy={verify.busy} type="button" onClick={() => void verify.run()}>
          Verify chain
        </Busy>
      </div>
      <ProblemBox error={verify.error} />
      {result === undefined ? null : result.ok ? (
        <p class="ok" role="status">
          ✓ The chain is intact: {result.checked} records checked
          {result.head === null ? "" : `, head ${result.head.slice(0, 16)}…`}.
        </p>
      ) : (
        <p class="bad" role="status">
          ✗ The chain is broken at record {result.brokenAt}.
        </p>
      )}
    </section>
  )
}

export const Audit = () => {
  const { can } = useAccess()
  const [filters, setFilters] = useState<Filters>({})
  const pages = usePages([filters])
  const list = useLoad(
    () =>
      ok(
        api.GET("/api/v1/audit/events", {
          params: { query: { ...pages.query(25), ...filters } },
        }),
      ),
    [filters, pages.cursor],
  )
  const apply = (form: HTMLFormElement) => {
    const entries = {
      actorId: value(form, "actorId"),
      action: value(form, "action"),
      targetId: value(form, "targetId"),
      from: instant(value(form, "from")),
      to: instant(value(form, "to")),
    }
    setFilters(Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined && v !== "")))
  }
  return (
    <>
      {can("audit.event.verify") ? <Verify /> : null}
      <form class="card" aria-label="Filter the audit log" onSubmit={onSubmit(apply)}>
        <Field label="Action">
          <input name="action" placeholder="auth.login.succeeded" autocomplete="off" />
        </Field>
        <Field label="Actor id">
          <input name="actorId" autocomplete="off" />
        </Field>
        <Field label="Target id">
          <input name="targetId" autocomplete="off" />
        </Field>
        <Field label="From">
          <input name="from" type="datetime-local" />
        </Field>
        <Field label="To">
          <input name="to" type="datetime-local" />
        </Field>
        <button type="submit">Filter</button>
      </form>
      <PagedTable
        list={list}
        pages={pages}
        what="audit records"
        caption="Audit records"
        head={["When", "Action", "Outcome", "Actor", "Target", "Details"]}
        empty="No records match."
        row={(r) => (
          <tr key={r.id}>
            <td>
              <When at={r.occurredAt} />
            </td>
            <td>
              <code>{r.action}</code>
            </td>
            <td class={r.outcome === "success" ? "ok" : "bad"}>{r.outcome}</td>
            <td>
              <code>{r.actorId ?? "—"}</code>
            </td>
            <td>
              {r.targetType ?? ""} <code>{r.targetId ?? "—"}</code>
            </td>
            <td>
              <details>
                <summary>More</summary>
                <pre>{JSON.stringify({ requestId: r.requestId, ip: r.ip, metadata: r.metadata }, null, 2)}</pre>
              </details>
            </td>
          </tr>
        )}
      />
    </>
  )
}
