// The console's building blocks: loading an API answer with its states, showing an API problem (its `detail` and each
// field's message), paging a cursor list, forms' fields and busy buttons. Screens are made of these.
import type { ButtonHTMLAttributes, ComponentChildren } from "preact"
import { useCallback, useEffect, useRef, useState } from "preact/hooks"
import { ProblemError } from "../../../../client/index.ts"

/** What a failed call shows: the problem's `detail` (else its title), then each field's message. */
export const problemText = (error: unknown): string => {
  if (error instanceof ProblemError) {
    const problem = error.problem as {
      detail?: string
      title?: string
      errors?: ReadonlyArray<{ path: string; message: string }>
    }
    const head = problem.detail ?? problem.title ?? `request failed (${error.status})`
    const fields = (problem.errors ?? []).map((e) => `${e.path}: ${e.message}`)
    return [head, ...fields].join("\n")
  }
  if (error instanceof TypeError) return "The platform could not be reached. Check your connection and try again."
  return error instanceof Error ? error.message : String(error)
}

/** An API problem, announced to assistive technology; nothing when there is none. */
export const ProblemBox = ({ error }: { readonly error: unknown }) =>
  error === undefined ? null : (
    <div class="problem" role="alert">
      {problemText(error)
        .split("\n")
        .map((line) => (
          <p key={line}>{line}</p>
        ))}
    </div>
  )

export const Loading = ({ what }: { readonly what: string }) => (
  <p class="loading" role="status" aria-live="polite">
    Loading {what}…
  </p>
)

export interface Loaded<A> {
  readonly data: A | undefined
  readonly error: unknown
  readonly loading: boolean
  readonly reload: () => void
}

/** Runs `load` now and whenever `deps` change (a later answer replaces an earlier one, never the reverse). */
export const useLoad = <A,>(load: () => Promise<A>, deps: ReadonlyArray<unknown>): Loaded<A> => {
  const [state, setState] = useState<{ data: A | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  })
  const [round, setRound] = useState(0)
  const latest = useRef(0)
  useEffect(() => {
    const ticket = ++latest.current
    setState((s) => ({ ...s, loading: true, error: undefined }))
    load().then(
      (data) => ticket === latest.current && setState({ data, error: undefined, loading: false }),
      (error: unknown) => ticket === latest.current && setState({ data: undefined, error, loading: false }),
    )
  }, [...deps, round])
  const reload = useCallback(() => setRound((r) => r + 1), [])
  return { ...state, reload }
}

/**
 * An action's state: `run` calls it (one at a time), `busy` while it runs, `error` its last problem (cleared by the
 * next run). Answers whether it succeeded.
 */
export const useAction = <Args extends Array<unknown>>(action: (...args: Args) => Promise<unknown>) => {
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<unknown>(undefined)
  const run = async (...args: Args): Promise<boolean> => {
    if (busy) return false
    setBusy(true)
    setError(undefined)
    try {
      await action(...args)
      return true
    } catch (e) {
      setError(e)
      return false
    } finally {
      setBusy(false)
    }
  }
  return { run, busy, error, clear: () => setError(undefined) }
}

/** A cursor list's pages: the cursor of the page shown, and the way back (the API's cursors only go forward). */
export const usePages = (resetOn: ReadonlyArray<unknown>) => {
  const [stack, setStack] = useState<ReadonlyArray<string | undefined>>([undefined])
  useEffect(() => setStack([undefined]), resetOn)
  const cursor = stack[stack.length - 1]
  return {
    cursor,
    /** The list request's query for the page shown: `limit` of them, from its cursor. */
    query: (limit: number) => ({ limit: String(limit), ...(cursor ? { cursor } : {}) }),
    page: stack.length,
    next: (cursor: string) => setStack((s) => [...s, cursor]),
    previous: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
  }
}

/** A filter's choice of `options`, the first "Any" (empty: not filtered). */
export const AnyOf = ({ name, options }: { readonly name: string; readonly options: ReadonlyArray<string> }) => (
  <select name={name}>
    <option value="">Any</option>
    {options.map((option) => (
      <option key={option} value={option}>
        {option}
      </option>
    ))}
  </select>
)

export const Pager = ({
  pages,
  nextCursor,
  label,
}: {
  readonly pages: ReturnType<typeof usePages>
  readonly nextCursor: string | null | undefined
  readonly label: string
}) => (
  <nav class="pager" aria-label={`${label} pages`}>
    <button type="button" disabled={pages.page === 1} onClick={pages.previous}>
      ← Previous
    </button>
    <span>Page {pages.page}</span>
    <button
      type="button"
      disabled={nextCursor === null || nextCursor === undefined}
      onClick={() => nextCursor && pages.next(nextCursor)}
    >
      Next →
    </button>
  </nav>
)

/** A labelled form field (the label wraps the control: clicking it focuses the control). */
export const Field = ({
  label,
  children,
  hint,
}: {
  readonly label: string
  readonly children: ComponentChildren
  readonly hint?: string
}) => (
  // biome-ignore lint/a11y/noLabelWithoutControl: the control is the label's child (`children`)
  <label class="field">
    <span>{label}</span>
    {children}
    {hint === undefined ? null : <small>{hint}</small>}
  </label>
)

export const Busy = ({
  busy,
  children,
  ...rest
}: { readonly busy: boolean; readonly children: ComponentChildren } & ButtonHTMLAttributes<HTMLButtonElement>) => (
  <button {...rest} disabled={busy || rest.disabled} aria-busy={busy}>
    {busy ? "Working…" : children}
  </button>
)

/** A table that scrolls sideways on a narrow screen instead of widening the page (Chromium lets the keyboard scroll it). */
export const Table = ({
  caption,
  head,
  children,
}: {
  readonly caption: string
  readonly head: ReadonlyArray<string>
  readonly children: ComponentChildren
}) => (
  <div class="table">
    <table>
      <caption>{caption}</caption>
      <thead>
        <tr>
          {head.map((h) => (
            <th key={h} scope="col">
              {h}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  </div>
)

/** A time as the reader's locale shows it, the exact RFC 3339 value on hover. */
export const When = ({ at }: { readonly at: string | null | undefined }) =>
  at === null || at === undefined ? (
    <span>—</span>
  ) : (
    <time dateTime={at} title={at}>
      {new Date(at).toLocaleString()}
    </time>
  )

/** An amount of money in its currency's minor unit, formatted with the currency's own exponent. */
export const money = (amount: number, currency: string) => {
  const digits =
    new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions().maximumFractionDigits ?? 2
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount / 10 ** digits)
}

/** A form's submit handler that does not reload the page. */
export const onSubmit = (handler: (form: HTMLFormElement) => void) => (event: Event) => {
  event.preventDefault()
  handler(event.currentTarget as HTMLFormElement)
}

/** A named field's text value in a form. */
export const value = (form: HTMLFormElement, name: string) =>
  ((form.elements.namedItem(name) as HTMLInputElement | null)?.value ?? "").trim()

/**
 * A destructive action asked twice: `label` first, then `question` (with a way back) runs `action`; `done` follows
 * its success. Its problem shows below.
 */
export const Confirm = ({
  label,
  question,
  action,
  done,
}: {
  readonly label: string
  readonly question: string
  readonly action: () => Promise<unknown>
  readonly done: () => void
}) => {
  const [asking, setAsking] = useState(false)
  const { run, busy, error } = useAction(action)
  return (
    <>
      {asking ? (
        <span class="actions">
          <Busy busy={busy} type="button" class="danger" onClick={async () => (await run()) && done()}>
            {question}
          </Busy>
          <button type="button" class="secondary" onClick={() => setAsking(false)}>
            Keep
          </button>
        </span>
      ) : (
        <button type="button" class="danger" onClick={() => setAsking(true)}>
          {label}
        </button>
      )}
      <ProblemBox error={error} />
    </>
  )
}

/**
 * A cursor list's page as a table, with its loading state, its problem, an empty line and the pager: `row` renders
 * one item (a `<tr>` with a `key`).
 */
export const PagedTable = <A,>({
  list,
  pages,
  what,
  caption,
  head,
  empty,
  row,
}: {
  readonly list: Loaded<{ readonly items: ReadonlyArray<A>; readonly nextCursor?: string | null }>
  readonly pages: ReturnType<typeof usePages>
  readonly what: string
  readonly caption: string
  readonly head: ReadonlyArray<string>
  readonly empty: string
  readonly row: (item: A) => ComponentChildren
}) => (
  <>
    <ProblemBox error={list.error} />
    {list.data === undefined ? (
      list.loading ? (
        <Loading what={what} />
      ) : null
    ) : (
      <>
        <Table caption={caption} head={head}>
          {list.data.items.length === 0 ? (
            <tr>
              <td colSpan={head.length}>{empty}</td>
            </tr>
          ) : (
            list.data.items.map(row)
          )}
        </Table>
        <Pager pages={pages} nextCursor={list.data.nextCursor} label={caption} />
      </>
    )}
  </>
)
