import { Schema } from "effect"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import * as Contract from "../../shared/Contract.ts"
import { Page, pageQuery } from "../../shared/Pagination.ts"
import {
  Conflict,
  Forbidden,
  IdempotencyKeyReused,
  NotFound,
  PreconditionFailed,
  ServiceUnavailable,
  Unauthorized,
  ValidationFailed,
} from "../../shared/Problem.ts"
import { AttachmentsApi } from "./AttachmentsApi.ts"
import { manifest } from "./module.ts"
import { IdOrSlug, NewPost, Post, PostChanges, PostId, Publication, Status, Tag } from "./Post.ts"

/** A post with its version as a strong ETag (`"3"`): send it back in `If-Match` to write, `If-None-Match` to read. */
const Versioned = HttpApiSchema.WithHeaders(Post, { etag: Schema.String })

/** `If-Match`: the ETag of the version this write is based on; another version is a 412 (never a lost update). */
const ifMatch = { "if-match": Schema.optional(Schema.String) }

/** A full-text query: 1–200 characters, in web-search syntax (`"exact phrase"`, `or`, `-without`). */
const Query = Schema.String.check(
  Schema.isMaxCodePoints(200, { message: "must be at most 200 characters" }),
  Schema.makeFilter((s: string) => s.trim().length > 0, { message: "must not be blank" }),
)

/** What anyone may read: published posts, search, tags and the feed. */
export class ReadingApi extends HttpApiGroup.make("reading")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/blog/posts", {
      query: {
        ...pageQuery,
        tag: Schema.optional(Tag),
        authorId: Schema.optional(PostId),
        /** Full-text search over title, excerpt and body; results ranked, best first. */
        q: Schema.optional(Query),
      },
      success: Page(Post),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "Published posts, newest first; with `q`, ranked by relevance"),
    // `{id}` as in the writers' routes on a post (one path in the document), but a slug is read here too.
    HttpApiEndpoint.get("get", "/api/v1/blog/posts/:id", {
      params: { id: IdOrSlug },
      headers: { "if-none-match": Schema.optional(Schema.String) },
      success: [Versioned, HttpApiSchema.Empty(304)],
      error: [NotFound, Unauthorized, ValidationFailed, ServiceUnavailable],
    })
      // Open: a published post is anyone's. A bearer token, when sent, is verified by the handler (an invalid one is a
      // 401): its author, or a holder of blog.post.read.any, also reads it unpublished.
      .pipe(Route.open())
      .annotate(
        OpenApi.Summary,
        "A post by id or slug (published; the author's own or with blog.post.read.any otherwise)",
      ),
    HttpApiEndpoint.get("feed", "/api/v1/blog/feed.xml", {
      success: Schema.String.pipe(HttpApiSchema.asText({ contentType: "application/atom+xml" })),
      error: [ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "Atom feed of the latest published posts"),
    HttpApiEndpoint.get("tags", "/api/v1/blog/tags", {
      success: Schema.Struct({ items: Schema.Array(Schema.Struct({ tag: Schema.String, count: Schema.Int })) }),
      error: [ServiceUnavailable],
    })
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "Tags of published posts with their counts, most used first"),
  )
  .annotate(OpenApi.Description, "Published posts: list, full-text search, tags and the Atom feed") {}

/** What writers do: their posts, from draft to published. Ownership rules are the function's own (see Posts.ts). */
export class WritingApi extends HttpApiGroup.make("writing")
  .add(
    HttpApiEndpoint.get("mine", "/api/v1/blog/me/posts", {
      query: { ...pageQuery, status: Schema.optional(Status) },
      success: Page(Post),
      error: [ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("blog.post.create"))
      .annotate(OpenApi.Summary, "The caller's own posts, any status, newest first"),
    HttpApiEndpoint.post("create", "/api/v1/blog/posts", {
      headers: Contract.idempotencyKeyHeader,
      payload: NewPost,
      success: Versioned.pipe(HttpApiSchema.status(201)),
      error: [Conflict, IdempotencyKeyReused, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.requires("blog.post.create"))
      .annotate(OpenApi.Summary, "Create a draft (slug from the title unless given); Idempotency-Key honoured"),
    HttpApiEndpoint.patch("update", "/api/v1/blog/posts/:id", {
      params: { id: PostId },
      headers: ifMatch,
      payload: PostChanges,
      success: Versioned,
      error: [NotFound, Forbidden, PreconditionFailed, Conflict, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Change a post (own with blog.post.create, or blog.post.update.any); tags replace"),
    HttpApiEndpoint.post("publish", "/api/v1/blog/posts/:id/publish", {
      params: { id: PostId },
      headers: ifMatch,
      // No body at all (read as null) is a publication now, as `{}` is.
      payload: [Publication, Schema.Null],
      success: Versioned,
      error: [NotFound, Forbidden, PreconditionFailed, Conflict, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        "Publish now, or schedule for a future publishAt (own with blog.post.publish, or blog.post.publish.any)",
      ),
    HttpApiEndpoint.post("unpublish", "/api/v1/blog/posts/:id/unpublish", {
      params: { id: PostId },
      headers: ifMatch,
      success: Versioned,
      error: [NotFound, Forbidden, PreconditionFailed, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Back to draft (same rule as publish)"),
    HttpApiEndpoint.delete("delete", "/api/v1/blog/posts/:id", {
      params: { id: PostId },
      headers: ifMatch,
      success: HttpApiSchema.NoContent,
      error: [NotFound, Forbidden, PreconditionFailed, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Delete a post (one's own, or with blog.post.delete.any)"),
  )
  .annotate(OpenApi.Description, "Writing posts: drafts, changes, publishing and scheduling") {}

/** Blog's HTTP contract; request-decoding failures render as 400 validation_failed problems. */
export class BlogApi extends Contract.make(
  HttpApi.make("blog").add(ReadingApi).add(WritingApi).add(AttachmentsApi),
  manifest,
) {}
