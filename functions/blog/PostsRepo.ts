import { Context, Effect, Layer, Option } from "effect"
import { Db, type DbError } from "../../shared/Db.ts"
import type { Status } from "./Post.ts"

/** A post as stored, without its attachments (another table's). */
export interface StoredPost {
  readonly id: string
  readonly slug: string
  readonly slugFixed: boolean
  readonly title: string
  readonly excerpt: string
  readonly body: string
  readonly html: string
  readonly status: Status
  readonly publishAt: string | null
  readonly publishedAt: string | null
  readonly authorId: string
  readonly tags: ReadonlyArray<string>
  readonly version: number
  readonly createdAt: string
  readonly updatedAt: string
}

/** A new post's row; the repository sets its times, status (draft) and version (1). */
export interface NewRow {
  readonly id: string
  readonly slug: string
  readonly slugFixed: boolean
  readonly title: string
  readonly excerpt: string
  readonly body: string
  readonly html: string
  readonly authorId: string
  readonly tags: ReadonlyArray<string>
}

/** What a write sets (fields left out stay as they are). */
export interface RowChanges {
  readonly slug?: string
  readonly slugFixed?: boolean
  readonly title?: string
  readonly excerpt?: string
  readonly body?: string
  readonly html?: string
  readonly tags?: ReadonlyArray<string>
  readonly status?: Status
  /** A time (ISO), `null`, or `"now"`: the transaction's time at millisecond precision. */
  readonly publishAt?: string | null
  readonly publishedAt?: string | "now" | null
}

/** The filters of the public list. */
export interface PublishedFilter {
  readonly tag?: string | undefined
  readonly authorId?: string | undefined
}

interface Row {
  readonly id: string
  readonly slug: string
  readonly slug_fixed: boolean
  readonly title: string
  readonly excerpt: string
  readonly body: string
  readonly html: string
  readonly status: Status
  readonly publish_at: Date | null
  readonly published_at: Date | null
  readonly author_id: string
  readonly tags: Array<string>
  readonly version: number
  readonly created_at: Date
  readonly updated_at: Date
  readonly [column: string]: unknown
}

const COLUMNS = `p.id, p.slug, p.slug_fixed, p.title, p.excerpt, p.body, p.html, p.status, p.publish_at, p.published_at,
  p.author_id, p.tags, p.version, p.created_at, p.updated_at`

const toPost = (row: Row): StoredPost => ({
  id: row.id,
  slug: row.slug,
  slugFixed: row.slug_fixed,
  title: row.title,
  excerpt: row.excerpt,
  body: row.body,
  html: row.html,
  status: row.status,
  publishAt: row.publish_at?.toISOString() ?? null,
  publishedAt: row.published_at?.toISOString() ?? null,
  authorId: row.author_id,
  tags: row.tags,
  version: row.version,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
})

/**
 * How many matches of a search are ranked: the newest ones. Ranking reads each match's stored vector, so ranking every
 * match of a word found in most of 100,000 posts took about a second; the newest 1,000 are ranked in tens of ms.
 */
export const SEARCH_CANDIDATES = 1_000

// The transaction's time as the API shows it (milliseconds), so that what a cursor carries is what is stored.
const NOW = "date_trunc('milliseconds', now())"

/** Blog's posts table: keyed writes conditional on the version read, and the lists' keyset queries. */
export class PostsRepo extends Context.Service<
  PostsRepo,
  {
    /** Inserts a draft unless its slug is taken (then None: the caller tries another slug). */
    insert(row: NewRow): Effect.Effect<Option.Option<StoredPost>, DbError>
    /** The highest `-N` suffix of `base` in use (1 for `base` itself), 0 when `base` is free. */
    slugTaken(base: string): Effect.Effect<number, DbError>
    /**
     * Inside a transaction, waits for any other transaction deriving slugs from `base` to end: writers of one title
     * take their `-N` in turn instead of all trying the same one.
     */
    lockSlug(base: string): Effect.Effect<void, DbError>
    /** Whether another post than `id` has this slug. */
    slugUsedElsewhere(slug: string, id: string): Effect.Effect<boolean, DbError>
    byId(id: string): Effect.Effect<Option.Option<StoredPost>, DbError>
    bySlug(slug: string): Effect.Effect<Option.Option<StoredPost>, DbError>
    /**
     * Writes `changes` (and the next version) only if the post is still at `version`: None when it is not (or is gone),
     * so no write is ever lost to another made between the read and this one. With `slug` it may also fail on the
     * slug's unique constraint (a concurrent writer took it).
     */
    update(id: string, version: number, changes: RowChanges): Effect.Effect<Option.Option<StoredPost>, DbError>
    /** Deletes the post only if it is still at `version`. */
    remove(id: string, version: number): Effect.Effect<boolean, DbError>
    /** Published posts, newest `publishedAt` first, after the keyset position `after`; `limit` rows. */
    published(
      filter: PublishedFilter,
      after: { readonly at: string; readonly id: string } | undefined,
      limit: number,
    ): Effect.Effect<ReadonlyArray<StoredPost>, DbError>
    /**
     * Published posts matching a web-search query, best rank first among the newest `SEARCH_CANDIDATES` matches, after
     * `(rank, id)`; each with its rank as text.
     */
    search(
      query: { readonly q: string; readonly language: string } & PublishedFilter,
      after: { readonly rank: string; readonly id: string } | undefined,
      limit: number,
    ): Effect.Effect<ReadonlyArray<{ readonly post: StoredPost; readonly rank: string }>, DbError>
    /** An author's posts, any status or one, newest created first, after `(createdAt, id)`. */
    byAuthor(
      authorId: string,
      status: Status | undefined,
      after: { readonly at: string; readonly id: string } | undefined,
      limit: number,
    ): Effect.Effect<ReadonlyArray<StoredPost>, DbError>
    /** The tags of published posts with how many use each, most used first (at most `limit`). */
    tags(limit: number): Effect.Effect<ReadonlyArray<{ readonly tag: string; readonly count: number }>, DbError>
    /**
     * Publishes the post if it is still scheduled for `publishAt` (the job's check: a post rescheduled, published or
     * unpublished since is left alone); Some when this call published it.
     */
    publishIfDue(id: string, publishAt: string): Effect.Effect<Option.Option<StoredPost>, DbError>
    /** Scheduled posts whose time has come, oldest first (at most `limit`): id and time. */
    overdue(limit: number): Effect.Effect<ReadonlyArray<{ readonly id: string; readonly publishAt: string }>, DbError>
  }
>()("blog/PostsRepo") {
  /** The repository over the function's Db. */
  static readonly layer = Layer.effect(
    PostsRepo,
    Effect.gen(function* () {
      const db = yield* Db
      const posts = `${db.schema}.posts`
      const one = (rows: ReadonlyArray<Row>) => Option.map(Option.fromNullishOr(rows[0]), toPost)

      const insert = Effect.fn("PostsRepo.insert")(function* (row: NewRow) {
        // A taken slug is no error here (that would abort the caller's transaction): the row is simply not inserted.
        const rows = yield* db.query<Row>(
          `INSERT INTO ${posts} AS p (id, slug, slug_fixed, title, excerpt, body, html, status, author_id, tags,
             created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'draft', $8, $9, ${NOW}, ${NOW})
           ON CONFLICT (slug) DO NOTHING
           RETURNING ${COLUMNS}`,
          [row.id, row.slug, row.slugFixed, row.title, row.excerpt, row.body, row.html, row.authorId, row.tags],
        )
        return one(rows)
      })

      const slugTaken = Effect.fn("PostsRepo.slugTaken")(function* (base: string) {
        // `base` and `base-<digits>`, found by a range on the slug index ('.' follows '-' in the C collation).
        const [row] = yield* db.query<{ base: boolean; highest: string | null }>(
          `SELECT EXISTS (SELECT 1 FROM ${posts} WHERE slug = $1) AS base,
                  (SELECT max(substring(slug FROM char_length($1) + 2)::bigint)::text FROM ${posts}
                    WHERE slug >= $1 || '-' AND slug < $1 || '.'
                      AND substring(slug FROM char_length($1) + 2) ~ '^[0-9]{1,9}$') AS highest`,
          [base],
        )
        if (row === undefined || !row.base) return 0
        return Math.max(1, Number(row.highest ?? 1))
      })

      const lockSlug = Effect.fn("PostsRepo.lockSlug")(function* (base: string) {
        yield* db.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`${posts}.slug:${base}`])
      })

      const slugUsedElsewhere = Effect.fn("PostsRepo.slugUsedElsewhere")(function* (slug: string, id: string) {
        const rows = yield* db.query(`SELECT 1 FROM ${posts} WHERE slug = $1 AND id <> $2`, [slug, id])
        return rows.length > 0
      })

      const byId = Effect.fn("PostsRepo.byId")(function* (id: string) {
        return one(yield* db.query<Row>(`SELECT ${COLUMNS} FROM ${posts} p WHERE p.id = $1`, [id]))
      })

      const bySlug = Effect.fn("PostsRepo.bySlug")(function* (slug: string) {
        return one(yield* db.query<Row>(`SELECT ${COLUMNS} FROM ${posts} p WHERE p.slug = $1`, [slug]))
      })

      const update = Effect.fn("PostsRepo.update")(function* (id: string, version: number, changes: RowChanges) {
        const sets: Array<string> = []
        const params: Array<unknown> = [id, version]
        const set = (column: string, value: unknown, cast = "") => {
          params.push(value)
          sets.push(`${column} = $${params.length}${cast}`)
        }
        if (changes.slug !== undefined) set("slug", changes.slug)
        if (changes.slugFixed !== undefined) set("slug_fixed", changes.slugFixed)
        if (changes.title !== undefined) set("title", changes.title)
        if (changes.excerpt !== undefined) set("excerpt", changes.excerpt)
        if (changes.body !== undefined) set("body", changes.body)
        if (changes.html !== undefined) set("html", changes.html)
        if (changes.tags !== undefined) set("tags", changes.tags)
        if (changes.status !== undefined) set("status", changes.status)
        if (changes.publishAt !== undefined) set("publish_at", changes.publishAt, "::timestamptz")
        if (changes.publishedAt === "now") sets.push(`published_at = ${NOW}`)
        else if (changes.publishedAt !== undefined) set("published_at", changes.publishedAt, "::timestamptz")
        const rows = yield* db.query<Row>(
          `UPDATE ${posts} AS p SET ${[...sets, "version = p.version + 1", `updated_at = ${NOW}`].join(", ")}
           WHERE p.id = $1 AND p.version = $2
           RETURNING ${COLUMNS}`,
          params,
        )
        return one(rows)
      })

      const remove = Effect.fn("PostsRepo.remove")(function* (id: string, version: number) {
        const rows = yield* db.query(`DELETE FROM ${posts} WHERE id = $1 AND version = $2 RETURNING id`, [id, version])
        return rows.length > 0
      })

      // The conditions of the public filters, numbered after `params`.
      const filters = (filter: PublishedFilter, params: Array<unknown>) => {
        const where = ["p.status = 'published'"]
        if (filter.tag !== undefined) {
          params.push([filter.tag])
          where.push(`p.tags @> $${params.length}::text[]`)
        }
        if (filter.authorId !== undefined) {
          params.push(filter.authorId)
          where.push(`p.author_id = $${params.length}::uuid`)
        }
        return where
      }

      const published = Effect.fn("PostsRepo.published")(function* (
        filter: PublishedFilter,
        after: { readonly at: string; readonly id: string } | undefined,
        limit: number,
      ) {
        const params: Array<unknown> = []
        const where = filters(filter, params)
        if (after !== undefined) {
          params.push(after.at, after.id)
          where.push(`(p.published_at, p.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`)
        }
        params.push(limit)
        const rows = yield* db.query<Row>(
          `SELECT ${COLUMNS} FROM ${posts} p WHERE ${where.join(" AND ")}
           ORDER BY p.published_at DESC, p.id DESC LIMIT $${params.length}`,
          params,
        )
        return rows.map(toPost)
      })

      const search = Effect.fn("PostsRepo.search")(function* (
        query: { readonly q: string; readonly language: string } & PublishedFilter,
        after: { readonly rank: string; readonly id: string } | undefined,
        limit: number,
      ) {
        const params: Array<unknown> = [query.language, query.q]
        // The query written out where it is used (not a CTE or a join): the planner then sees its terms and picks the
        // GIN index for a rare one and the newest-first index for a common one.
        const tsquery = "websearch_to_tsquery($1::regconfig, $2)"
        const where = [...filters(query, params), `p.search @@ ${tsquery}`]
        params.push(SEARCH_CANDIDATES)
        const candidates = `$${params.length}`
        const page: Array<string> = []
        if (after !== undefined) {
          params.push(after.rank, after.id)
          page.push(`(r.rank, r.id) < ($${params.length - 1}::real, $${params.length}::uuid)`)
        }
        params.push(limit)
        // ts_rank weighs title (A) over excerpt (B) over body (C), over the newest SEARCH_CANDIDATES matches: its cost
        // is per match ranked (each reads the post's stored vector), so a word in most posts costs as much as one in a
        // thousand. The cursor carries the rank as Postgres printed it (a real prints exactly enough digits to read
        // back the same value), so the keyset compares like with like.
        const rows = yield* db.query<Row & { rank: string }>(
          `WITH matches AS (
             SELECT p.id, p.search FROM ${posts} p WHERE ${where.join(" AND ")}
             ORDER BY p.published_at DESC, p.id DESC LIMIT ${candidates}),
           r AS (SELECT m.id, ts_rank(m.search, ${tsquery}) AS rank FROM matches m)
           SELECT ${COLUMNS}, r.rank::text AS rank FROM r JOIN ${posts} p ON p.id = r.id
           ${page.length > 0 ? `WHERE ${page.join(" AND ")}` : ""}
           ORDER BY r.rank DESC, r.id DESC LIMIT $${params.length}`,
          params,
        )
        return rows.map((row) => ({ post: toPost(row), rank: row.rank }))
      })

      const byAuthor = Effect.fn("PostsRepo.byAuthor")(function* (
        authorId: string,
        status: Status | undefined,
        after: { readonly at: string; readonly id: string } | undefined,
        limit: number,
      ) {
        const params: Array<unknown> = [authorId]
        const where = ["p.author_id = $1"]
        if (status !== undefined) {
          params.push(status)
          where.push(`p.status = $${params.length}`)
        }
        if (after !== undefined) {
          params.push(after.at, after.id)
          where.push(`(p.created_at, p.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`)
        }
        params.push(limit)
        const rows = yield* db.query<Row>(
          `SELECT ${COLUMNS} FROM ${posts} p WHERE ${where.join(" AND ")}
           ORDER BY p.created_at DESC, p.id DESC LIMIT $${params.length}`,
          params,
        )
        return rows.map(toPost)
      })

      const tags = Effect.fn("PostsRepo.tags")(function* (limit: number) {
        const rows = yield* db.query<{ tag: string; count: number }>(
          `SELECT tag, count(*)::int AS count FROM ${posts} p, unnest(p.tags) AS tag
           WHERE p.status = 'published' GROUP BY tag ORDER BY count(*) DESC, tag LIMIT $1`,
          [limit],
        )
        return rows
      })

      const publishIfDue = Effect.fn("PostsRepo.publishIfDue")(function* (id: string, publishAt: string) {
        const rows = yield* db.query<Row>(
          `UPDATE ${posts} AS p SET status = 'published', publish_at = NULL, published_at = ${NOW},
             slug_fixed = true, version = p.version + 1, updated_at = ${NOW}
           WHERE p.id = $1 AND p.status = 'scheduled' AND p.publish_at = $2::timestamptz
           RETURNING ${COLUMNS}`,
          [id, publishAt],
        )
        return one(rows)
      })

      const overdue = Effect.fn("PostsRepo.overdue")(function* (limit: number) {
        // The time in ISO form to the microsecond (Postgres's precision), so that publishIfDue's check reads it back
        // exactly whatever the precision it was written with.
        const rows = yield* db.query<{ id: string; publish_at: string }>(
          `SELECT id, to_char(publish_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS publish_at FROM ${posts} WHERE status = 'scheduled' AND publish_at <= now()
           ORDER BY publish_at LIMIT $1`,
          [limit],
        )
        return rows.map((row) => ({ id: row.id, publishAt: row.publish_at }))
      })

      return PostsRepo.of({
        insert,
        slugTaken,
        lockSlug,
        slugUsedElsewhere,
        byId,
        bySlug,
        update,
        remove,
        published,
        search,
        byAuthor,
        tags,
        publishIfDue,
        overdue,
      })
    }),
  )
}
