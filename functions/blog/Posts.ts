import { randomUUID } from "node:crypto"
import { Clock, Context, Effect, Layer, Option, Schema } from "effect"
import { Permissions } from "../../shared/access/Permissions.ts"
import { Db, type DbError, UNIQUE_VIOLATION } from "../../shared/Db.ts"
import * as Jobs from "../../shared/Jobs.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { DEFAULT_LIMIT, decodeCursorWhere, decodeTimeCursor, pageOf } from "../../shared/Pagination.ts"
import * as Problem from "../../shared/Problem.ts"
import {
  Conflict,
  Forbidden,
  NotFound,
  PreconditionFailed,
  type ServiceUnavailable,
  type ValidationFailed,
} from "../../shared/Problem.ts"
import { Attachments } from "./Attachments.ts"
import { render } from "./Markdown.ts"
import type { Attachment, NewPost, Post, PostChanges, Publication, Status } from "./Post.ts"
import { PostsRepo, type RowChanges, type StoredPost } from "./PostsRepo.ts"
import { type Condition, matches } from "./Preconditions.ts"
import { slugOf, withSuffix } from "./Slugs.ts"

/** The on-demand job that publishes a scheduled post at its time (declared in App.ts). */
export const PUBLISH_JOB = "publish-scheduled"

/** The cron job that publishes any scheduled post whose job did not (dead-lettered after its retries). */
export const OVERDUE_JOB = "publish-overdue"

/** What a publish job carries: the post and the time it was scheduled for. */
export const PublishJob = Schema.Struct({ postId: Schema.String, publishAt: Schema.String })

/** A page of posts: `{items, nextCursor}`. */
export interface PostPage {
  readonly items: ReadonlyArray<Post>
  readonly nextCursor: string | null
}

/** The public list's query (validated by the contract). */
export interface ListQuery {
  readonly tag?: string | undefined
  readonly authorId?: string | undefined
  readonly q?: string | undefined
  readonly limit?: number | undefined
  readonly cursor?: string | undefined
}

/** Who may do what to a post: on one's own with the first permission (none: any signed-in author), on anyone's with the second. */
const RULES = {
  update: { own: "blog.post.create", any: "blog.post.update.any" },
  publish: { own: "blog.post.publish", any: "blog.post.publish.any" },
  delete: { own: undefined, any: "blog.post.delete.any" },
} as const

/** Who may read a post that is not published, besides its author. */
const READ_ANY = "blog.post.read.any"

/** The most tags `GET /tags` lists (the most used first). */
export const MAX_TAGS_LISTED = 1000

/** Rounds of read, check and conditional write before a write that keeps being overtaken gives up (503). */
const WRITE_ATTEMPTS = 5

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const RANK = /^\d+(\.\d+)?(e-?\d+)?$/

const unavailable = Problem.unavailable("database unavailable", "the blog is unavailable, retry later")
const jobsUnavailable = Problem.unavailable("job store unavailable", "the post cannot be scheduled now, retry later")

/** A write decided from the post as read: nothing to do, or the changes and the event that describes them. */
type Plan =
  | { readonly _tag: "Unchanged" }
  | {
      readonly _tag: "Write"
      readonly changes: RowChanges
      readonly event: (post: StoredPost) => { readonly type: string; readonly data: Record<string, unknown> }
    }

/**
 * Blog's posts: the rules of writing, publishing and reading them, events through the outbox. The ownership rules check
 * permissions with the `Permissions` of the request (authz in production, a stand-in in tests).
 */
export class Posts extends Context.Service<
  Posts,
  {
    /** Creates a draft by `authorId`; the slug comes from the title unless given (a given one that is taken: 409). */
    create(authorId: string, input: NewPost): Effect.Effect<Post, Conflict | ServiceUnavailable>
    /**
     * A post by id or slug: a published one for anyone, another for its author or a holder of `blog.post.read.any`
     * (`viewer`: the verified caller, if any); NotFound otherwise, so drafts are not revealed.
     */
    read(idOrSlug: string, viewer: string | undefined): Effect.Effect<Post, NotFound | ServiceUnavailable, Permissions>
    /** Published posts, newest first, or ranked by relevance to `q` (best first); filters `tag`, `authorId`. */
    list(query: ListQuery): Effect.Effect<PostPage, ValidationFailed | ServiceUnavailable>
    /** The caller's own posts, any status (or `status`), newest created first. */
    mine(
      authorId: string,
      query: {
        readonly status?: Status | undefined
        readonly limit?: number | undefined
        readonly cursor?: string | undefined
      },
    ): Effect.Effect<PostPage, ValidationFailed | ServiceUnavailable>
    /** The tags of published posts with their counts, most used first. */
    tags(): Effect.Effect<ReadonlyArray<{ readonly tag: string; readonly count: number }>, ServiceUnavailable>
    /** The latest published posts (the feed). */
    latest(limit: number): Effect.Effect<ReadonlyArray<Post>, ServiceUnavailable>
    /** Changes a post (own with `blog.post.create`, or `blog.post.update.any`); `ifMatch` must name its version. */
    update(
      callerId: string,
      id: string,
      changes: PostChanges,
      ifMatch: Condition | undefined,
    ): Effect.Effect<Post, NotFound | Forbidden | PreconditionFailed | Conflict | ServiceUnavailable, Permissions>
    /**
     * Publishes now, or schedules for `publishAt` when it is in the future (own with `blog.post.publish`, or
     * `blog.post.publish.any`). Scheduling enqueues the publish job (`Jobs`) before the post is written.
     */
    publish(
      callerId: string,
      id: string,
      publication: Publication,
      ifMatch: Condition | undefined,
    ): Effect.Effect<
      Post,
      NotFound | Forbidden | PreconditionFailed | Conflict | ServiceUnavailable,
      Jobs.Jobs | Permissions
    >
    /** A published or scheduled post back to draft (same rule as publishing). */
    unpublish(
      callerId: string,
      id: string,
      ifMatch: Condition | undefined,
    ): Effect.Effect<Post, NotFound | Forbidden | PreconditionFailed | ServiceUnavailable, Permissions>
    /** Deletes a post (one's own, or with `blog.post.delete.any`). */
    remove(
      callerId: string,
      id: string,
      ifMatch: Condition | undefined,
    ): Effect.Effect<void, NotFound | Forbidden | PreconditionFailed | ServiceUnavailable, Permissions>
    /**
     * The publish job: publishes the post if it is still scheduled for `publishAt`, with its `blog.post.published`
     * event in the same transaction. Idempotent: a second run (or the overdue sweep) finds it published and does nothing.
     */
    publishScheduled(postId: string, publishAt: string): Effect.Effect<boolean, DbError>
    /** Publishes every scheduled post whose time has passed (the safety net of jobs that failed for good). */
    publishOverdue(): Effect.Effect<number, DbError>
  }
>()("blog/Posts") {
  /**
   * Posts over their repository and the outbox; the ownership rules ask the caller's `Permissions` (the request's: a
   * test's stand-in or authz). At start it checks that
   * the database has the text search configuration `searchLanguage` and builds the search column with it.
   */
  static readonly layer = (options: { readonly searchLanguage: string }) =>
    Layer.effect(
      Posts,
      Effect.gen(function* () {
        const db = yield* Db
        const repo = yield* PostsRepo
        const outbox = yield* Outbox
        const language = options.searchLanguage
        yield* useSearchLanguage(db, language)

        // The attachments of posts by post id (Attachments.ts).
        const { attachmentsOf } = yield* Attachments

        const none: ReadonlyMap<string, ReadonlyArray<Attachment>> = new Map()
        const withAttachments = (posts: ReadonlyArray<StoredPost>) =>
          Effect.map(
            posts.length === 0 ? Effect.succeed(none) : attachmentsOf(posts.map((p) => p.id)),
            (attachments): Array<Post> =>
              posts.map(({ slugFixed: _, ...post }) => ({ ...post, attachments: attachments.get(post.id) ?? [] })),
          )
        const one = (post: StoredPost) => Effect.map(withAttachments([post]), (posts) => posts[0]!)

        const may = (userId: string, permission: string | undefined) =>
          permission === undefined
            ? Effect.succeed(true)
            : Effect.flatMap(Effect.service(Permissions), (permissions) => permissions.check(userId, permission))

        // A post the viewer may not see does not exist for them.
        const visible = (post: StoredPost, viewer: string | undefined) =>
          post.status === "published"
            ? Effect.succeed(true)
            : viewer === undefined
              ? Effect.succeed(false)
              : viewer === post.authorId
                ? Effect.succeed(true)
                : may(viewer, READ_ANY)

        const notFound = (id: string) => new NotFound({ detail: `no post ${id}` })

        // The post, if the caller may act on it: 404 when they may not even see it, 403 when they may see it only.
        const authorize = (callerId: string, post: StoredPost, action: keyof typeof RULES) =>
          Effect.gen(function* () {
            const rule = RULES[action]
            const allowed = yield* may(callerId, post.authorId === callerId ? rule.own : rule.any)
            if (allowed) return
            if (!(yield* visible(post, callerId))) return yield* notFound(post.id)
            return yield* new Forbidden({
              detail:
                post.authorId === callerId
                  ? `${action} of one's own posts needs ${rule.own}`
                  : `${action} of another's post needs ${rule.any}`,
            })
          })

        // Read, authorise, check If-Match, plan, then write only if the post is still at the version read: a write
        // made meanwhile sends the loop round again, where a stale If-Match is a 412 (never a lost update).
        const write = <E>(
          callerId: string,
          id: string,
          action: keyof typeof RULES,
          ifMatch: Condition | undefined,
          plan: (post: StoredPost, attempt: number) => Effect.Effect<Plan, E | ServiceUnavailable>,
        ) =>
          Effect.gen(function* () {
            for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
              const found = yield* repo.byId(id).pipe(Effect.catchTag("DbError", unavailable))
              if (Option.isNone(found)) return yield* notFound(id)
              const post = found.value
              yield* authorize(callerId, post, action)
              if (ifMatch !== undefined && !matches(ifMatch, post.version)) {
                return yield* new PreconditionFailed({
                  detail: `the post is at version ${post.version}, not the one If-Match names`,
                })
              }
              const decided = yield* plan(post, attempt)
              if (decided._tag === "Unchanged") return post
              const written = yield* db
                .transaction(
                  Effect.gen(function* () {
                    const updated = yield* repo.update(id, post.version, decided.changes)
                    if (Option.isSome(updated)) {
                      const event = decided.event(updated.value)
                      yield* outbox.publish({ type: event.type, subject: id, data: { postId: id, ...event.data } })
                    }
                    return updated
                  }),
                )
                .pipe(
                  Effect.catchTag("DbError", (error) =>
                    // A concurrent writer took the slug this write derived: the next round derives another.
                    error.code === UNIQUE_VIOLATION && decided.changes.slug !== undefined
                      ? Effect.succeed(Option.none<StoredPost>())
                      : unavailable(error),
                  ),
                )
              if (Option.isSome(written)) return written.value
            }
            return yield* unavailable(`post ${id} kept changing during ${action}`)
          })

        // A free slug for `base`: itself, or the next `-N` after the highest in use.
        const freeSlug = (base: string) => Effect.map(repo.slugTaken(base), (taken) => withSuffix(base, taken))

        const create = Effect.fn("Posts.create")(function* (authorId: string, input: NewPost) {
          const body = input.body ?? ""
          const html = render(body)
          const row = {
            id: randomUUID(),
            title: input.title,
            excerpt: input.excerpt ?? "",
            body,
            html,
            authorId,
            tags: input.tags ?? [],
          }
          const inserted = yield* db
            .transaction(
              Effect.gen(function* () {
                if (input.slug !== undefined) {
                  const post = yield* repo.insert({ ...row, slug: input.slug, slugFixed: true })
                  if (Option.isNone(post)) {
                    return yield* new Conflict({ detail: `the slug ${input.slug} is taken` })
                  }
                  return post.value
                }
                // Derived: the next free `-N`, found by one writer of this title at a time (the lock is held until the
                // commit); a slug taken meanwhile another way (given explicitly) makes the insert skip, then retry.
                const base = slugOf(input.title)
                yield* repo.lockSlug(base)
                for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
                  const post = yield* repo.insert({ ...row, slug: yield* freeSlug(base), slugFixed: false })
                  if (Option.isSome(post)) return post.value
                }
                return yield* unavailable(`no free slug for ${base} after ${WRITE_ATTEMPTS} attempts`)
              }).pipe(
                Effect.tap((post) =>
                  outbox.publish({
                    type: "blog.post.created",
                    subject: post.id,
                    data: { postId: post.id, slug: post.slug, title: post.title, authorId, status: post.status },
                  }),
                ),
              ),
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          return yield* one(inserted).pipe(Effect.catchTag("DbError", unavailable))
        })

        const read = Effect.fn("Posts.read")(function* (idOrSlug: string, viewer: string | undefined) {
          const found = yield* (UUID.test(idOrSlug) ? repo.byId(idOrSlug.toLowerCase()) : repo.bySlug(idOrSlug)).pipe(
            Effect.catchTag("DbError", unavailable),
          )
          if (Option.isNone(found) || !(yield* visible(found.value, viewer))) return yield* notFound(idOrSlug)
          return yield* one(found.value).pipe(Effect.catchTag("DbError", unavailable))
        })

        const list = Effect.fn("Posts.list")(function* (query: ListQuery) {
          const limit = query.limit ?? DEFAULT_LIMIT
          const filter = { tag: query.tag, authorId: query.authorId }
          if (query.q !== undefined) {
            // Ranked: the keyset is (rank, id), the rank as Postgres printed it.
            const after =
              query.cursor === undefined
                ? undefined
                : yield* decodeCursorWhere(query.cursor, (p) => UUID.test(p.id) && RANK.test(p.at))
            const rows = yield* repo
              .search({ ...filter, q: query.q, language }, after && { rank: after.at, id: after.id }, limit + 1)
              .pipe(Effect.catchTag("DbError", unavailable))
            const page = pageOf(rows, limit, (row) => ({ at: row.rank, id: row.post.id }))
            const items = yield* withAttachments(page.items.map((row) => row.post)).pipe(
              Effect.catchTag("DbError", unavailable),
            )
            return { items, nextCursor: page.nextCursor }
          }
          const after = query.cursor === undefined ? undefined : yield* decodeTimeCursor(query.cursor)
          const rows = yield* repo.published(filter, after, limit + 1).pipe(Effect.catchTag("DbError", unavailable))
          const page = pageOf(rows, limit, (post) => ({ at: post.publishedAt!, id: post.id }))
          const items = yield* withAttachments(page.items).pipe(Effect.catchTag("DbError", unavailable))
          return { items, nextCursor: page.nextCursor }
        })

        const mine = Effect.fn("Posts.mine")(function* (
          authorId: string,
          query: {
            readonly status?: Status | undefined
            readonly limit?: number | undefined
            readonly cursor?: string | undefined
          },
        ) {
          const limit = query.limit ?? DEFAULT_LIMIT
          const after = query.cursor === undefined ? undefined : yield* decodeTimeCursor(query.cursor)
          const rows = yield* repo
            .byAuthor(authorId, query.status, after, limit + 1)
            .pipe(Effect.catchTag("DbError", unavailable))
          const page = pageOf(rows, limit, (post) => ({ at: post.createdAt, id: post.id }))
          const items = yield* withAttachments(page.items).pipe(Effect.catchTag("DbError", unavailable))
          return { items, nextCursor: page.nextCursor }
        })

        const tags = Effect.fn("Posts.tags")(function* () {
          return yield* repo.tags(MAX_TAGS_LISTED).pipe(Effect.catchTag("DbError", unavailable))
        })

        const latest = Effect.fn("Posts.latest")(function* (limit: number) {
          return yield* repo
            .published({}, undefined, limit)
            .pipe(Effect.flatMap(withAttachments), Effect.catchTag("DbError", unavailable))
        })

        const update = Effect.fn("Posts.update")(function* (
          callerId: string,
          id: string,
          input: PostChanges,
          ifMatch: Condition | undefined,
        ) {
          const post = yield* write(callerId, id, "update", ifMatch, (post) =>
            Effect.gen(function* () {
              const changes: { -readonly [K in keyof RowChanges]: RowChanges[K] } = {}
              if (input.title !== undefined && input.title !== post.title) changes.title = input.title
              if (input.excerpt !== undefined && input.excerpt !== post.excerpt) changes.excerpt = input.excerpt
              if (input.body !== undefined && input.body !== post.body) {
                changes.body = input.body
                changes.html = render(input.body)
              }
              if (input.tags !== undefined && input.tags.join("\n") !== post.tags.join("\n")) changes.tags = input.tags
              if (input.slug !== undefined) {
                // Given explicitly: kept from now on, even if the title changes; another post's is a 409.
                if (input.slug !== post.slug) {
                  const taken = yield* repo
                    .slugUsedElsewhere(input.slug, id)
                    .pipe(Effect.catchTag("DbError", unavailable))
                  if (taken) return yield* new Conflict({ detail: `the slug ${input.slug} is taken` })
                  changes.slug = input.slug
                }
                if (!post.slugFixed) changes.slugFixed = true
              } else if (changes.title !== undefined && !post.slugFixed) {
                // A draft never published follows its title; its own current slug is kept when it still fits.
                const base = slugOf(changes.title)
                const current = post.slug === base || new RegExp(`^${base}-\\d{1,9}$`).test(post.slug)
                if (!current) changes.slug = yield* freeSlug(base).pipe(Effect.catchTag("DbError", unavailable))
              }
              if (Object.keys(changes).length === 0) return { _tag: "Unchanged" } satisfies Plan
              return {
                _tag: "Write",
                changes,
                event: (updated) => ({
                  type: "blog.post.updated",
                  data: {
                    slug: updated.slug,
                    version: updated.version,
                    changes: Object.keys(changes).filter((k) => k !== "html" && k !== "slugFixed"),
                  },
                }),
              } satisfies Plan
            }),
          )
          return yield* one(post).pipe(Effect.catchTag("DbError", unavailable))
        })

        const publish = Effect.fn("Posts.publish")(function* (
          callerId: string,
          id: string,
          publication: Publication,
          ifMatch: Condition | undefined,
        ) {
          const jobs = yield* Jobs.Jobs
          const now = yield* Clock.currentTimeMillis
          const at = publication.publishAt === undefined ? undefined : Date.parse(publication.publishAt)
          const post = yield* write(callerId, id, "publish", ifMatch, (post) =>
            Effect.gen(function* () {
              if (at === undefined || at <= now) {
                if (post.status === "published") return { _tag: "Unchanged" } satisfies Plan
                return {
                  _tag: "Write",
                  changes: { status: "published", publishAt: null, publishedAt: "now", slugFixed: true },
                  event: (published) => ({
                    type: "blog.post.published",
                    data: {
                      slug: published.slug,
                      authorId: published.authorId,
                      publishedAt: published.publishedAt,
                      version: published.version,
                    },
                  }),
                } satisfies Plan
              }
              if (post.status === "published") {
                return yield* new Conflict({ detail: "the post is published: unpublish it before scheduling it" })
              }
              const publishAt = new Date(at).toISOString()
              if (post.status === "scheduled" && post.publishAt === publishAt)
                return { _tag: "Unchanged" } satisfies Plan
              // The job first, keyed by the version this write makes: were the process to die after the write, the job
              // is there; were the write not to happen, the job finds the post not scheduled for its time and does
              // nothing. A later schedule of the same post is a new version, so a new job.
              yield* jobs
                .enqueue(
                  PUBLISH_JOB,
                  { postId: id, publishAt },
                  { key: `${id}:${post.version + 1}`, runAt: new Date(at) },
                )
                .pipe(Effect.catchTag("JobsError", jobsUnavailable))
              return {
                _tag: "Write",
                changes: { status: "scheduled", publishAt, publishedAt: null },
                event: (scheduled) => ({
                  type: "blog.post.updated",
                  data: {
                    slug: scheduled.slug,
                    version: scheduled.version,
                    changes: ["status", "publishAt"],
                    status: "scheduled",
                    publishAt,
                  },
                }),
              } satisfies Plan
            }),
          )
          return yield* one(post).pipe(Effect.catchTag("DbError", unavailable))
        })

        const unpublish = Effect.fn("Posts.unpublish")(function* (
          callerId: string,
          id: string,
          ifMatch: Condition | undefined,
        ) {
          const post = yield* write(callerId, id, "publish", ifMatch, (post) =>
            Effect.succeed<Plan>(
              post.status !== "published" && post.status !== "scheduled"
                ? { _tag: "Unchanged" }
                : {
                    _tag: "Write",
                    changes: { status: "draft", publishAt: null, publishedAt: null },
                    event: (draft) => ({
                      type: "blog.post.unpublished",
                      data: { slug: draft.slug, version: draft.version, was: post.status },
                    }),
                  },
            ),
          )
          return yield* one(post).pipe(Effect.catchTag("DbError", unavailable))
        })

        const remove = Effect.fn("Posts.remove")(function* (
          callerId: string,
          id: string,
          ifMatch: Condition | undefined,
        ) {
          for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
            const found = yield* repo.byId(id).pipe(Effect.catchTag("DbError", unavailable))
            if (Option.isNone(found)) return yield* notFound(id)
            const post = found.value
            yield* authorize(callerId, post, "delete")
            if (ifMatch !== undefined && !matches(ifMatch, post.version)) {
              return yield* new PreconditionFailed({
                detail: `the post is at version ${post.version}, not the one If-Match names`,
              })
            }
            const removed = yield* db
              .transaction(
                Effect.gen(function* () {
                  const gone = yield* repo.remove(id, post.version)
                  if (gone) {
                    yield* outbox.publish({
                      type: "blog.post.deleted",
                      subject: id,
                      data: { postId: id, slug: post.slug, authorId: post.authorId },
                    })
                  }
                  return gone
                }),
              )
              .pipe(Effect.catchTag("DbError", unavailable))
            if (removed) return
          }
          return yield* unavailable(`post ${id} kept changing during delete`)
        })

        const publishScheduled = Effect.fn("Posts.publishScheduled")(function* (postId: string, publishAt: string) {
          return yield* db.transaction(
            Effect.gen(function* () {
              const published = yield* repo.publishIfDue(postId, publishAt)
              if (Option.isNone(published)) return false
              const post = published.value
              yield* outbox.publish({
                type: "blog.post.published",
                subject: postId,
                data: {
                  postId,
                  slug: post.slug,
                  authorId: post.authorId,
                  publishedAt: post.publishedAt,
                  scheduledFor: publishAt,
                  version: post.version,
                },
              })
              return true
            }),
          )
        })

        const publishOverdue = Effect.fn("Posts.publishOverdue")(function* () {
          let published = 0
          for (const due of yield* repo.overdue(100)) {
            if (yield* publishScheduled(due.id, due.publishAt)) published++
          }
          if (published > 0) yield* Effect.logWarning("published overdue scheduled posts", { published })
          return published
        })

        return Posts.of({
          create,
          read,
          list,
          mine,
          tags,
          latest,
          update,
          publish,
          unpublish,
          remove,
          publishScheduled,
          publishOverdue,
        })
      }),
    )
}

/**
 * Checks that the database has the text search configuration and, when the search column was built with another one
 * (BLOG_SEARCH_LANGUAGE changed), rebuilds it with this one: under a transaction-level advisory lock, so instances
 * starting together rebuild once. A configuration the database lacks stops the start with a clear error.
 */
const useSearchLanguage = (db: Db["Service"], language: string) =>
  Effect.gen(function* () {
    if (!SEARCH_CONFIG.test(language))
      return yield* Effect.die(new Error(`BLOG_SEARCH_LANGUAGE ${language} is not a name`))
    const known = yield* db.query("SELECT 1 FROM pg_catalog.pg_ts_config WHERE cfgname = $1", [language])
    if (known.length === 0) {
      const available = yield* db.query<{ cfgname: string }>(
        "SELECT cfgname FROM pg_catalog.pg_ts_config ORDER BY cfgname",
      )
      return yield* Effect.die(
        new Error(
          `BLOG_SEARCH_LANGUAGE=${language}: the database has no such text search configuration (it has ${available.map((c) => c.cfgname).join(", ")})`,
        ),
      )
    }
    const posts = `${db.schema}.posts`
    const settings = `${db.schema}.search_settings`
    yield* db.transaction(
      Effect.gen(function* () {
        yield* db.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`${db.schema}.search_settings`])
        const [current] = yield* db.query<{ language: string }>(`SELECT language FROM ${settings}`)
        if (current?.language === language) return
        yield* Effect.logWarning("rebuilding the post search column for another language", {
          from: current?.language,
          to: language,
        })
        // The name passed SEARCH_CONFIG and is one of pg_ts_config's: safe to write into the DDL as a literal.
        const vector = (column: string, weight: string) =>
          `setweight(to_tsvector('${language}'::regconfig, ${column}), '${weight}')`
        yield* db.query("SET LOCAL statement_timeout = 0")
        yield* db.query(`ALTER TABLE ${posts} DROP COLUMN search`)
        // Kept in the row as migration 0101 keeps it, set in the same statement so that the rewrite stores it so.
        yield* db.query(
          `ALTER TABLE ${posts} ADD COLUMN search tsvector GENERATED ALWAYS AS (
             ${vector("title", "A")} || ${vector("excerpt", "B")} || ${vector("body", "C")}) STORED,
           ALTER COLUMN search SET STORAGE MAIN`,
        )
        yield* db.query(`CREATE INDEX posts_search ON ${posts} USING gin (search)`)
        yield* db.query(`UPDATE ${settings} SET language = $1`, [language])
      }),
    )
  }).pipe(Effect.orDie)

const SEARCH_CONFIG = /^[a-z_][a-z0-9_]{0,62}$/
