// Analytics: over a date range (the last 30 days unless changed), the overview's numbers, one event's time series
// drawn with uPlot, and an event property's top values. uPlot is loaded only when a chart is drawn (its own chunk),
// so the console's first paint does not pay for it; its stylesheet is small and ships with the app's.
import "uplot/dist/uPlot.min.css"
import type { ComponentChildren } from "preact"
import { useEffect, useRef, useState } from "preact/hooks"
import type uPlot from "uplot"
import { ok } from "../../../../../client/index.ts"
import { api } from "../session.ts"
import type { Answer } from "../types.ts"
import { Field, Loading, money, onSubmit, ProblemBox, Table, useLoad, value } from "../ui.tsx"

type Interval = "minute" | "hour" | "day"
type Points = Answer<"/api/v1/analytics/timeseries", "get">["points"]

const DAY = 86_400_000
/** A `date` input's value (YYYY-MM-DD, UTC) for an instant. */
const day = (at: number) => new Date(at).toISOString().slice(0, 10)

interface Range {
  readonly from: string
  readonly to: string
}

/** The range's dates as the API's RFC 3339 instants: from the start of `from` to the end of `to` (UTC). */
const instants = (range: Range) => ({
  from: `${range.from}T00:00:00.000Z`,
  to: new Date(Date.parse(`${range.to}T00:00:00.000Z`) + DAY).toISOString(),
})

const Tile = ({ label, children }: { readonly label: string; readonly children: ComponentChildren }) => (
  <div class="tile">
    <dt>{label}</dt>
    <dd>{children}</dd>
  </div>
)

const Overview = ({ range }: { readonly range: Range }) => {
  const overview = useLoad(
    () => ok(api.GET("/api/v1/analytics/overview", { params: { query: instants(range) } })),
    [range],
  )
  const o = overview.data
  return (
    <section aria-label="Overview">
      <h2>Overview</h2>
      <ProblemBox error={overview.error} />
      {o === undefined ? (
        overview.loading ? (
          <Loading what="the overview" />
        ) : null
      ) : (
        <dl class="tiles">
          <Tile label="Sign-ups">{o.signups}</Tile>
          <Tile label="Active today">{o.activeUsers.day}</Tile>
          <Tile label="Active this week">{o.activeUsers.week}</Tile>
          <Tile label="Active this month">{o.activeUsers.month}</Tile>
          <Tile label="Logins">{o.logins}</Tile>
          <Tile label="Posts">{o.posts}</Tile>
          <Tile label="Active subscriptions">{o.subscriptions.active}</Tile>
          <Tile label="MRR">
            {o.mrr.currency === null ? Number(o.mrr.amount) : money(Number(o.mrr.amount), o.mrr.currency)}
          </Tile>
        </dl>
      )}
    </section>
  )
}

/** The series drawn by uPlot at its container's width (redrawn when that changes). */
const Chart = ({ points, label }: { readonly points: Points; readonly label: string }) => {
  const box = useRef<HTMLDivElement>(null)
  const [problem, setProblem] = useState<unknown>(undefined)
  useEffect(() => {
    const element = box.current
    if (element === null) return
    let chart: uPlot | undefined
    let observer: ResizeObserver | undefined
    let gone = false
    import("uplot").then(
      ({ default: UPlot }) => {
        if (gone) return
        const width = () => Math.max(element.clientWidth, 200)
        chart = new UPlot(
          {
            width: width(),
            height: 240,
            series: [
              {},
              { label: "Events", stroke: "#2563eb", fill: "rgba(37, 99, 235, 0.12)", width: 2 },
              { label: "Unique users", stroke: "#16a34a", width: 2 },
            ],
            axes: [{}, { size: 48 }],
          },
          [points.map((p) => Date.parse(p.t) / 1000), points.map((p) => p.count), points.map((p) => p.uniques)],
          element,
        )
        observer = new ResizeObserver(() => chart?.setSize({ width: width(), height: 240 }))
        observer.observe(element)
      },
      (error: unknown) => setProblem(error),
    )
    return () => {
      gone = true
      observer?.disconnect()
      chart?.destroy()
    }
  }, [points])
  return (
    <>
      <ProblemBox error={problem} />
      <div class="chart" ref={box} role="img" aria-label={label} />
    </>
  )
}

const Series = ({ range }: { readonly range: Range }) => {
  const [query, setQuery] = useState<{ event: string; interval: Interval }>({
    event: "auth.login.succeeded",
    interval: "day",
  })
  const series = useLoad(
    // The answer carries what it answers: while the next one loads, the chart's label still matches its data.
    async () => ({
      asked: { ...query, ...range },
      ...(await ok(api.GET("/api/v1/analytics/timeseries", { params: { query: { ...query, ...instants(range) } } }))),
    }),
    [query, range],
  )
  const points = series.data?.points ?? []
  const total = points.reduce((sum, p) => sum + p.count, 0)
  const asked = series.data?.asked ?? { ...query, ...range }
  const summary = `${asked.event} per ${asked.interval}, ${asked.from} to ${asked.to}: ${total} events over ${points.length} ${asked.interval}s, at most ${Math.max(0, ...points.map((p) => p.count))} in one.`
  return (
    <section aria-label="Time series">
      <h2>Time series</h2>
      <form
        class="card"
        aria-label="Time series event"
        onSubmit={onSubmit((form) =>
          setQuery({ event: value(form, "event"), interval: value(form, "interval") as Interval }),
        )}
      >
        <Field label="Event">
          <input name="event" defaultValue={query.event} autocomplete="off" />
        </Field>
        <Field label="Interval">
          <select name="interval">
            {(["minute", "hour", "day"] as const).map((i) => (
              <option key={i} value={i} selected={i === query.interval}>
                {i}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit">Show</button>
      </form>
      <ProblemBox error={series.error} />
      {series.data === undefined ? (
        series.loading ? (
          <Loading what="the time series" />
        ) : null
      ) : (
        <>
          <Chart points={points} label={summary} />
          {/* The chart's data as text, for screen readers (visually hidden). */}
          <div class="visually-hidden">
            <Table caption={`${asked.event} per ${asked.interval}`} head={["Time", "Events", "Unique users"]}>
              {points
                .filter((p) => p.count > 0)
                .map((p) => (
                  <tr key={p.t}>
                    <td>{p.t}</td>
                    <td>{p.count}</td>
                    <td>{p.uniques}</td>
                  </tr>
                ))}
            </Table>
          </div>
        </>
      )}
    </section>
  )
}

const Top = ({ range }: { readonly range: Range }) => {
  const [query, setQuery] = useState({ event: "auth.login.succeeded", property: "method" })
  const top = useLoad(
    async () => ({
      asked: query,
      ...(await ok(
        api.GET("/api/v1/analytics/top", { params: { query: { ...query, limit: "10", ...instants(range) } } }),
      )),
    }),
    [query, range],
  )
  return (
    <section aria-label="Top values">
      <h2>Top values</h2>
      <form
        class="card"
        aria-label="Top values of"
        onSubmit={onSubmit((form) => setQuery({ event: value(form, "event"), property: value(form, "property") }))}
      >
        <Field label="Event">
          <input name="event" defaultValue={query.event} autocomplete="off" />
        </Field>
        <Field label="Property">
          <input name="property" defaultValue={query.property} autocomplete="off" />
        </Field>
        <button type="submit">Show</button>
      </form>
      <ProblemBox error={top.error} />
      {top.data === undefined ? (
        top.loading ? (
          <Loading what="top values" />
        ) : null
      ) : (
        <Table caption={`Top ${top.data.asked.property} of ${top.data.asked.event}`} head={["Value", "Count"]}>
          {top.data.items.length === 0 ? (
            <tr>
              <td colSpan={2}>No values in this range.</td>
            </tr>
          ) : (
            top.data.items.map((item) => (
              <tr key={String(item.value)}>
                <td>{String(item.value)}</td>
                <td>{item.count}</td>
              </tr>
            ))
          )}
        </Table>
      )}
    </section>
  )
}

export const Analytics = () => {
  const [range, setRange] = useState<Range>(() => ({ from: day(Date.now() - 29 * DAY), to: day(Date.now()) }))
  return (
    <>
      <form
        class="card"
        aria-label="Date range"
        onSubmit={onSubmit((form) => setRange({ from: value(form, "from"), to: value(form, "to") }))}
      >
        <Field label="From">
          <input name="from" type="date" defaultValue={range.from} required />
        </Field>
        <Field label="To">
          <input name="to" type="date" defaultValue={range.to} required />
        </Field>
        <button type="submit">Apply</button>
      </form>
      <Overview range={range} />
      <Series range={range} />
      <Top range={range} />
    </>
  )
}
