// Blog (issue 16): with --posts published posts (default 100,000) on the real Postgres of .env.test, the app as
// main.ts runs it (in this process, on its own HTTP port):
//   search:  ranked full-text search (`GET /posts?q=`) of one word drawn as the posts' words are (a skewed vocabulary:
//            common words match tens of thousands of posts), sequential requests; p50/p95/max (target p95 < 50 ms).
//   pages:   the public list's page 1 and page 1,000 (limit 20; the cursor of page 1,000 read from the table), taken
//            in turns; medians side by side (target: within 20 % of each other).
//   etag:    `GET /posts/{slug}` with `If-None-Match` (304, no body) and without (200), --concurrency requests in
//            flight for --seconds each; requests per second side by side, on blog's own port and then through the
//            gateway of the whole platform (`e2e/testing/platform.ts`: every function its own process, rate limits
//            off) over a post of the same shape.
// The posts are written by one INSERT … SELECT (titles of 6, excerpts of 20 and bodies of --words words), in a schema
// of their own, dropped after. Prints a table and, last, one JSON line; never asserts.
//   set -a; . ./.env.test; set +a; node bench/blog.ts [--posts 100000] [--words 120] [--queries 200]
//     [--concurrency 16] [--seconds 5]
import { randomBytes, randomUUID } from "node:crypto"
import { parseArgs } from "node:util"
import pg from "pg"
import { startPlatform } from "../e2e/testing/platform.ts"
import { app } from "../functions/blog/App.ts"
import { grantsStandIn } from "../functions/blog/testing/blogApp.ts"
import { encodeCursor } from "../shared/Pagination.ts"
import { startApp } from "../shared/testing/appHarness.ts"
import { databaseNamed, measuredCommit, quantile, textTable } from "./lib.ts"

const { values } = parseArgs({
  options: {
    posts: { type: "string", default: "100000" },
    words: { type: "string", default: "120" },
    queries: { type: "string", default: "200" },
    concurrency: { type: "string", default: "16" },
    seconds: { type: "string", default: "5" },
    /** Keep the schema afterwards (to look at the queries' plans), printing its name. */
    keep: { type: "boolean", default: false },
    /** Also measure the 200/304 pair through the gateway of the whole platform. */
    gateway: { type: "boolean", default: true },
    /** A schema kept by an earlier run (`--keep`): its posts are measured again, nothing is written. */
    schema: { type: "string" },
  },
})
const POSTS = Number(values.posts)
const WORDS = Number(values.words)
const QUERIES = Number(values.queries)
const CONCURRENCY = Number(values.concurrency)
const SECONDS = Number(values.seconds)
const VOCABULARY = 5_000
/** The far page compared with the first: page 1,000, or the last there is with fewer posts. */
const PAGE = Math.min(1_000, Math.floor(POSTS / 20))

const url = process.env.DATABASE_URL
if (!url) throw new Error("DATABASE_URL is not set: source .env.test (infra/up.sh starts the servers)")
const schema = values.schema ?? `bench_blog_${randomBytes(4).toString("hex")}`
const db = new pg.Client({ connectionString: url })
await db.connect()

const blog = await startApp(app, {
  env: {
    DB_SCHEMA: schema,
    KAFKA_BROKERS: undefined,
    LOG_LEVEL: "error",
    // A search over the whole table takes longer than the 1 s production bound only if something is wrong; the
    // bench reports it rather than failing on it.
    DB_QUERY_TIMEOUT_MS: "30000",
  },
  standIns: () => grantsStandIn({}),
})

// A word of the vocabulary, drawn with a skew (index = 5000 · u³): a few words are in most posts, most in few.
const WORD = (index: string) => `substr(md5((${index})::text), 1, 4 + ((${index}) % 5)) || chr(97 + (${index}) % 26)`
const draw = `floor(${VOCABULARY} * random() ^ 3)::int`
// Correlated with the post's row (`i`) in a condition the planner keeps, so that it is drawn again for every post.
const words = (n: number) => `(SELECT string_agg(${WORD("k")}, ' ') FROM (SELECT ${draw} AS k
  FROM generate_series(1, ${n}) g WHERE g <= ${n} + 0 * i) w)`

// The whole platform (every function its own process), one post in its blog, the 200/304 pair through its gateway.
async function throughGateway(
  rps: (headers: Record<string, string>, base: string) => Promise<number>,
): Promise<{ full: number; notModified: number }> {
  const platform = await startPlatform({ env: { RATE_LIMIT_IP_PER_MINUTE: "0", RATE_LIMIT_USER_PER_MINUTE: "0" } })
  try {
    const client = new pg.Client({ connectionString: databaseNamed(url!, platform.database) })
    await client.connect()
    await client.query(
      `INSERT INTO blog.posts (id, slug, slug_fixed, title, excerpt, body, html, status, published_at, author_id,
         created_at, updated_at)
       SELECT gen_random_uuid(), 'bench-1', true, title, excerpt, body, html, 'published', now(), author_id, now(), now()
       FROM (SELECT 'A post' AS title, $1 AS excerpt, $2 AS body, $3 AS html, gen_random_uuid() AS author_id) p`,
      ["x ".repeat(100), "word ".repeat(WORDS), `<p>${"word ".repeat(WORDS)}</p>`],
    )
    await client.end()
    await rps({}, platform.url)
    return { full: await rps({}, platform.url), notModified: await rps({ "if-none-match": '"1"' }, platform.url) }
  } finally {
    await platform.stop()
  }
}

try {
  const seeded = performance.now()
  await db.query("SET statement_timeout = 0")
  if (values.schema === undefined)
    await db.query(
      `INSERT INTO ${schema}.posts (id, slug, slug_fixed, title, excerpt, body, html, status, published_at, author_id,
       tags, created_at, updated_at)
     SELECT gen_random_uuid(), 'bench-' || i, true, ${words(6)}, ${words(20)}, ${words(WORDS)}, '', 'published',
       date_trunc('milliseconds', now() - i * interval '1 second'), $1, ARRAY['tag-' || (i % 50)],
       date_trunc('milliseconds', now() - i * interval '1 second'), date_trunc('milliseconds', now())
     FROM generate_series(1, $2::int) i`,
      [randomUUID(), POSTS],
    )
  if (values.schema === undefined) await db.query(`ANALYZE ${schema}.posts`)
  const seedSeconds = (performance.now() - seeded) / 1000

  const timed = async (path: string, headers: Record<string, string> = {}, base = blog.url) => {
    const started = performance.now()
    const response = await fetch(`${base}${path}`, { headers })
    await response.arrayBuffer()
    if (response.status !== 200 && response.status !== 304) throw new Error(`${path}: ${response.status}`)
    return performance.now() - started
  }

  // search: words drawn as the posts' are, plus the most common one.
  const { rows: drawn } = await db.query<{ w: string }>(
    `SELECT ${WORD("k")} AS w FROM (SELECT ${draw} AS k FROM generate_series(1, $1::int)) d`,
    [QUERIES],
  )
  const { rows: commonest } = await db.query<{ w: string }>(`SELECT ${WORD("0")} AS w`)
  for (const { w } of drawn.slice(0, 10)) await timed(`/api/v1/blog/posts?q=${w}`) // warm-up
  const search: Array<number> = []
  for (const { w } of drawn) search.push(await timed(`/api/v1/blog/posts?q=${w}`))
  const common: Array<number> = []
  for (let i = 0; i < 20; i++) common.push(await timed(`/api/v1/blog/posts?q=${commonest[0]!.w}`))
  const { rows: matches } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${schema}.posts WHERE search @@ websearch_to_tsquery('english', $1)`,
    [commonest[0]!.w],
  )

  // pages: page 1 and page 1,000 of 20.
  const { rows: at } = await db.query<{ at: Date; id: string }>(
    `SELECT published_at AS at, id FROM ${schema}.posts WHERE status = 'published'
     ORDER BY published_at DESC, id DESC OFFSET $1 LIMIT 1`,
    [(PAGE - 1) * 20 - 1],
  )
  const cursor = encodeCursor({ at: at[0]!.at.toISOString(), id: at[0]!.id })
  const first: Array<number> = []
  const thousandth: Array<number> = []
  for (let i = 0; i < 10; i++) await timed(`/api/v1/blog/posts?cursor=${cursor}`)
  for (let i = 0; i < 100; i++) {
    first.push(await timed("/api/v1/blog/posts"))
    thousandth.push(await timed(`/api/v1/blog/posts?cursor=${cursor}`))
  }

  // etag: 200 vs 304 on one post.
  const rps = async (headers: Record<string, string>, base = blog.url) => {
    const until = performance.now() + SECONDS * 1000
    let done = 0
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() < until) {
          await timed("/api/v1/blog/posts/bench-1", headers, base)
          done++
        }
      }),
    )
    return done / SECONDS
  }
  await rps({})
  const full = await rps({})
  const notModified = await rps({ "if-none-match": '"1"' })

  // The same pair through the gateway: a platform of its own, one post like the others in its blog schema.
  const viaGateway = values.gateway ? await throughGateway(rps) : undefined

  const ms = (n: number) => n.toFixed(1)
  console.log(`blog bench: ${POSTS} published posts (bodies of ${WORDS} words), seeded in ${seedSeconds.toFixed(1)} s`)
  console.log(
    textTable(
      ["case", "n", "p50 ms", "p95 ms", "max ms", "target"],
      [
        [
          "ranked search, one drawn word",
          String(search.length),
          ms(quantile(search, 0.5)),
          ms(quantile(search, 0.95)),
          ms(Math.max(...search)),
          "p95 < 50 ms",
        ],
        [
          `ranked search, the commonest word (${matches[0]!.n} matches)`,
          String(common.length),
          ms(quantile(common, 0.5)),
          ms(quantile(common, 0.95)),
          ms(Math.max(...common)),
          "",
        ],
        [
          "list, page 1",
          String(first.length),
          ms(quantile(first, 0.5)),
          ms(quantile(first, 0.95)),
          ms(Math.max(...first)),
          "",
        ],
        [
          `list, page ${PAGE.toLocaleString("en")}`,
          String(thousandth.length),
          ms(quantile(thousandth, 0.5)),
          ms(quantile(thousandth, 0.95)),
          ms(Math.max(...thousandth)),
          "within 20 % of page 1",
        ],
      ],
    ),
  )
  console.log(
    textTable(
      ["GET /posts/{slug}", "requests/s", "concurrency"],
      [
        ["200 (no If-None-Match)", full.toFixed(0), String(CONCURRENCY)],
        ["304 (If-None-Match)", notModified.toFixed(0), String(CONCURRENCY)],
        ...(viaGateway === undefined
          ? []
          : [
              ["200 through the gateway", viaGateway.full.toFixed(0), String(CONCURRENCY)],
              ["304 through the gateway", viaGateway.notModified.toFixed(0), String(CONCURRENCY)],
            ]),
      ],
    ),
  )
  console.log(
    JSON.stringify({
      bench: "blog",
      ...measuredCommit(["functions/blog", "shared"]),
      posts: POSTS,
      searchP50Ms: quantile(search, 0.5),
      searchP95Ms: quantile(search, 0.95),
      commonestWordMatches: matches[0]!.n,
      commonestWordP95Ms: quantile(common, 0.95),
      page1MedianMs: quantile(first, 0.5),
      page: PAGE,
      pageNMedianMs: quantile(thousandth, 0.5),
      pageRatio: quantile(thousandth, 0.5) / quantile(first, 0.5),
      rps200: full,
      rps304: notModified,
      gatewayRps200: viaGateway?.full,
      gatewayRps304: viaGateway?.notModified,
    }),
  )
} finally {
  await blog.close()
  if (values.keep || values.schema !== undefined) console.log(`kept schema ${schema}`)
  else {
    await db.query(`DROP SCHEMA ${schema} CASCADE`).catch(() => {})
    await db.query(`DROP SCHEMA IF EXISTS ${schema}_jobs CASCADE`).catch(() => {})
  }
  await db.end()
}
