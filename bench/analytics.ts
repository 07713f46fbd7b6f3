// Analytics (issue 18), on the real Postgres of .env.test; prints a table and, last, one JSON line; never asserts.
//   ingest:  the whole platform (`e2e/testing/platform.ts`: every function its own process, rate limits off), and
//            --events events (default 200,000) sent through the gateway in batches of 100, --concurrency batches in
//            flight; every 50th batch is sent twice (its events must come back as duplicates). Events per second of
//            wall time; then counted: every event stored once (0 lost, 0 double-counted), and once the rollup worker
//            has caught up, the minute rollups hold each event once.
//   queries: --rows generated events (default 10,000,000) over 90 days, written by one INSERT … SELECT in time order
//            into a schema of their own (10 names, 200,000 users, 3 properties), folded by the rollup worker
//            (Rollups.drain, timed), then analytics as main.ts runs it (in this process): a series by day over 90 days,
//            by hour over 7 days, the top 10 values of a property over 90 days, a 3-step funnel over 30 days,
//            and the overview over 30 days, --queries each (p50/p95; targets p95 < 200, 200, 300, 1,000 ms, and ours for
//            the overview, 500 ms).
//   set -a; . ./.env.test; set +a; node bench/analytics.ts [--events 200000] [--concurrency 8] [--rows 10000000]
//     [--queries 40] [--skip-ingest] [--skip-queries] [--schema kept_schema] [--keep]
import { randomBytes, randomUUID } from "node:crypto"
import { parseArgs } from "node:util"
import { Effect } from "effect"
import pg from "pg"
import { startPlatform } from "../e2e/testing/platform.ts"
import { app } from "../functions/analytics/App.ts"
import { Rollups } from "../functions/analytics/Rollups.ts"
import { tokenOptions } from "../functions/auth/testing/authHarness.ts"
import { startIssuer } from "../functions/authz/testing/authzHarness.ts"
import { Permissions } from "../shared/access/Permissions.ts"
import { startApp } from "../shared/testing/appHarness.ts"
import { databaseNamed, measuredCommit, quantile, textTable } from "./lib.ts"

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "200000" },
    concurrency: { type: "string", default: "8" },
    rows: { type: "string", default: "10000000" },
    queries: { type: "string", default: "40" },
    "skip-ingest": { type: "boolean", default: false },
    "skip-queries": { type: "boolean", default: false },
    /** A schema kept by an earlier run (`--keep`): its events are queried again, nothing is written. */
    schema: { type: "string" },
    keep: { type: "boolean", default: false },
  },
})
const EVENTS = Number(values.events)
const CONCURRENCY = Number(values.concurrency)
const ROWS = Number(values.rows)
const QUERIES = Number(values.queries)
const BATCH = 100
const DAY = 86_400_000

const url = process.env.DATABASE_URL
if (!url) throw new Error("DATABASE_URL is not set: source .env.test (infra/up.sh starts the servers)")
const names = [
  "page_view",
  "click",
  "signup_start",
  "signup_done",
  "purchase",
  "search",
  "share",
  "scroll",
  "login",
  "logout",
]

const report: Record<string, unknown> = {}
const rows: Array<Array<string>> = []

// ---- ingest through the gateway ----------------------------------------------------------------------------------
if (!values["skip-ingest"]) {
  const platform = await startPlatform({
    env: {
      RATE_LIMIT_IP_PER_MINUTE: "0",
      RATE_LIMIT_USER_PER_MINUTE: "0",
      GATEWAY_ROUTES: JSON.stringify([{ method: "POST", path: "/api/v1/analytics/events", ipPerMinute: 0 }]),
    },
  })
  try {
    const tag = randomBytes(3).toString("hex")
    const batches = Math.ceil(EVENTS / BATCH)
    const bodyOf = (b: number) =>
      JSON.stringify({
        events: Array.from({ length: Math.min(BATCH, EVENTS - b * BATCH) }, (_, i) => {
          const n = b * BATCH + i
          return {
            id: randomUUID(),
            name: `${names[n % names.length]}_${tag}`,
            anonymousId: `v${n % 20_000}`,
            properties: { path: `/p${n % 50}`, country: `c${n % 20}`, plan: ["free", "pro", "team"][n % 3] },
          }
        }),
      })
    const bodies = Array.from({ length: batches }, (_, b) => bodyOf(b))
    // Every 50th batch again, at the end: each of its events a duplicate.
    const resent = bodies.filter((_, b) => b % 50 === 0)
    const queue = [...bodies, ...resent]
    let accepted = 0
    let duplicates = 0
    let failed = 0
    const send = async (body: string) => {
      const response = await fetch(`${platform.url}/api/v1/analytics/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      })
      const answer = (await response.json()) as { accepted?: number; duplicates?: number }
      if (response.status !== 202) failed++
      accepted += answer.accepted ?? 0
      duplicates += answer.duplicates ?? 0
    }
    for (let i = 0; i < 20; i++)
      await send(bodyOf(i).replaceAll(`_${tag}`, "_warmup")) // warm-up (fresh ids)
    ;[accepted, duplicates, failed] = [0, 0, 0]
    let next = 0
    const started = performance.now()
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < queue.length) await send(queue[next++]!)
      }),
    )
    const seconds = (performance.now() - started) / 1000
    const db = new pg.Client({ connectionString: databaseNamed(url!, platform.database) })
    await db.connect()
    const counted = async (sql: string) => Number((await db.query(sql, [`%_${tag}`])).rows[0].n)
    const stored = await counted("SELECT count(*) AS n FROM analytics.events WHERE name LIKE $1")
    const distinctIds = await counted("SELECT count(DISTINCT id) AS n FROM analytics.events WHERE name LIKE $1")
    const caughtUp = performance.now()
    for (;;) {
      const pending = Number(
        (
          await db.query(
            `SELECT count(*) AS n FROM analytics.events e, analytics.rollup_watermark w
             WHERE (e.txid, e.seq) > (w.last_txid, w.last_seq)`,
          )
        ).rows[0].n,
      )
      if (pending === 0) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const lagSeconds = (performance.now() - caughtUp) / 1000
    const rolled = await counted(
      "SELECT sum(count) AS n FROM analytics.rollups WHERE granularity = 'm' AND property = '' AND name LIKE $1",
    )
    await db.end()
    const rate = EVENTS / seconds
    Object.assign(report, {
      ingest: {
        events: EVENTS,
        resentEvents: resent.length * BATCH,
        seconds: Number(seconds.toFixed(2)),
        eventsPerSecond: Math.round(rate),
        accepted,
        duplicates,
        failedRequests: failed,
        stored,
        lost: EVENTS - distinctIds,
        doubleCounted: stored - distinctIds + Math.max(0, rolled - EVENTS),
        rolledUp: rolled,
        workerCatchUpSeconds: Number(lagSeconds.toFixed(2)),
      },
    })
    rows.push([
      "ingest through the gateway",
      `${Math.round(rate)} events/s (target 5,000)`,
      `${EVENTS} sent + ${resent.length * BATCH} again: accepted ${accepted}, duplicates ${duplicates}, stored ${stored}, rolled up ${rolled}, ${failed} failed requests`,
    ])
  } finally {
    await platform.stop()
  }
}

// ---- queries over 10M generated events ---------------------------------------------------------------------------
if (!values["skip-queries"]) {
  const schema = values.schema ?? `bench_analytics_${randomBytes(4).toString("hex")}`
  const issuer = await startIssuer()
  const reader = randomUUID()
  const analytics = await startApp(app, {
    env: {
      DB_SCHEMA: schema,
      KAFKA_BROKERS: undefined,
      LOG_LEVEL: "error",
      JWT_ISSUER: tokenOptions.issuer,
      JWT_AUDIENCE: tokenOptions.audience,
      AUTH_JWKS_URL: issuer.jwksUrl.href,
      DB_QUERY_TIMEOUT_MS: "120000",
      // The bench folds the generated events itself (timed), not the background worker.
      ANALYTICS_ROLLUP_INTERVAL_MS: "60000",
    },
    standIns: () => Permissions.local(() => Effect.succeed(true)),
  })
  const db = new pg.Client({ connectionString: url })
  await db.connect()
  try {
    await db.query("SET statement_timeout = 0")
    const end = Math.floor(Date.now() / DAY) * DAY
    const start = end - 90 * DAY
    let seedSeconds = 0
    let foldSeconds = 0
    if (values.schema === undefined) {
      const seeded = performance.now()
      // In time order (as they would arrive), so that one fold covers a short stretch of buckets.
      const h = (x: string) => `abs(hashint8(${x}))`
      for (let from = 0; from < ROWS; from += 1_000_000) {
        await db.query(
          `INSERT INTO ${schema}.events (id, name, occurred_at, user_id, actor, properties)
           SELECT gen_random_uuid(), n.name, t, 'u' || u, 'u' || u,
                  jsonb_build_object('path', '/p' || (${h("i * 3")} % 50), 'country', 'c' || (${h("i * 5")} % 20),
                                     'plan', (ARRAY['free', 'pro', 'team'])[1 + ${h("i * 11")} % 3])
           FROM generate_series($1::bigint, $2::bigint) i,
                LATERAL (SELECT $3::timestamptz + (i * ($4::float8 / $5)) * interval '1 millisecond' AS t,
                                ${h("i::int * 7")} % 200000 AS u) x,
                LATERAL (SELECT (ARRAY[${names.map((n) => `'${n}'`).join(",")}])[1 + ${h("i::int")} % 10] AS name) n`,
          [from, Math.min(ROWS, from + 1_000_000) - 1, new Date(start), 90 * DAY, ROWS],
        )
      }
      await db.query(`ANALYZE ${schema}.events`)
      seedSeconds = (performance.now() - seeded) / 1000
      const folding = performance.now()
      // The app's own worker folds too (one at a time: a pass that finds the lock taken folds nothing), so until none
      // is left.
      const pending = async () =>
        Number(
          (
            await db.query(
              `SELECT count(*) AS n FROM ${schema}.events e, ${schema}.rollup_watermark w
               WHERE (e.txid, e.seq) > (w.last_txid, w.last_seq)`,
            )
          ).rows[0].n,
        )
      do {
        await Effect.runPromise(
          Effect.flatMap(Effect.service(Rollups), (r) => r.drain(50_000)).pipe(
            Effect.provideContext(analytics.running.context as never),
          ) as Effect.Effect<number>,
        )
      } while ((await pending()) > 0)
      foldSeconds = (performance.now() - folding) / 1000
      await db.query(`ANALYZE ${schema}.rollups`)
    }
    const headers = { authorization: `Bearer ${await issuer.issue(reader)}` }
    const iso = (t: number) => new Date(t).toISOString()
    const timed = async (path: string) => {
      const started = performance.now()
      const response = await fetch(`${analytics.url}${path}`, { headers })
      await response.arrayBuffer()
      if (response.status !== 200) throw new Error(`${path}: ${response.status}`)
      return performance.now() - started
    }
    const cases: Array<[string, number, (i: number) => string]> = [
      [
        "series by day, 90 days",
        200,
        (i) => `/api/v1/analytics/timeseries?event=${names[i % 3]}&interval=day&from=${iso(start)}&to=${iso(end)}`,
      ],
      [
        "series by hour, 7 days",
        200,
        (i) =>
          `/api/v1/analytics/timeseries?event=${names[i % 3]}&interval=hour&from=${iso(end - 7 * DAY - (i % 5) * 3_600_000)}&to=${iso(end - (i % 5) * 3_600_000)}`,
      ],
      [
        "top 10 values, 90 days",
        300,
        (i) =>
          `/api/v1/analytics/top?event=${names[i % 3]}&property=${["path", "country", "plan"][i % 3]}&limit=10&from=${iso(start)}&to=${iso(end)}`,
      ],
      [
        "3-step funnel, 30 days",
        1_000,
        (i) =>
          `/api/v1/analytics/funnel?steps=page_view,signup_start,signup_done&windowSeconds=${86_400 * (1 + (i % 3))}&from=${iso(end - 30 * DAY - (i % 4) * DAY)}&to=${iso(end - (i % 4) * DAY)}`,
      ],
      // Not a target of the issue: ours, for the console's dashboard (active users of the day, week and month before
      // `to` from the sketches of every event, and the platform's counts).
      [
        "overview, 30 days",
        500,
        (i) => `/api/v1/analytics/overview?from=${iso(end - 30 * DAY - (i % 4) * DAY)}&to=${iso(end - (i % 4) * DAY)}`,
      ],
    ]
    const queries: Record<string, unknown> = {}
    for (const [label, target, path] of cases) {
      for (let i = 0; i < 3; i++) await timed(path(i)) // warm-up
      const samples: Array<number> = []
      for (let i = 0; i < QUERIES; i++) samples.push(await timed(path(i)))
      const p50 = quantile(samples, 0.5)
      const p95 = quantile(samples, 0.95)
      queries[label] = { p50: Number(p50.toFixed(1)), p95: Number(p95.toFixed(1)), targetP95: target }
      rows.push([label, `p95 ${p95.toFixed(1)} ms (target ${target})`, `p50 ${p50.toFixed(1)} ms, ${QUERIES} queries`])
    }
    const [size] = (
      await db.query(
        `SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) AS raw FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname LIKE 'events_p%'`,
        [schema],
      )
    ).rows
    const [rolled] = (
      await db.query(
        `SELECT count(*) AS n, pg_size_pretty(pg_total_relation_size('${schema}.rollups')) AS size FROM ${schema}.rollups`,
      )
    ).rows
    Object.assign(report, {
      queries: {
        rows: ROWS,
        seedSeconds: Number(seedSeconds.toFixed(1)),
        foldSeconds: Number(foldSeconds.toFixed(1)),
        foldedPerSecond: foldSeconds === 0 ? null : Math.round(ROWS / foldSeconds),
        rawSize: size.raw,
        rollupRows: Number(rolled.n),
        rollupSize: rolled.size,
        ...queries,
      },
    })
    rows.unshift([
      "10M dataset",
      `${ROWS} events`,
      `seeded in ${seedSeconds.toFixed(1)} s, folded in ${foldSeconds.toFixed(1)} s; raw ${size.raw}, ${rolled.n} rollup rows (${rolled.size})`,
    ])
  } finally {
    await analytics.close()
    await issuer.close()
    if (values.keep || values.schema !== undefined) console.log(`kept schema ${schema}`)
    else await db.query(`DROP SCHEMA ${schema} CASCADE; DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`)
    await db.end()
  }
}

console.log(textTable(["analytics", "figure", "detail"], rows))
console.log(
  JSON.stringify({ bench: "analytics", ...measuredCommit(["functions/analytics", "bench/analytics.ts"]), ...report }),
)
