import { randomUUID } from "node:crypto"
import { Config, Context, Effect, Layer, Option, Schema, type Stream } from "effect"
import type * as Multipart from "effect/http/Multipart"
import type { Permissions } from "../../shared/access/Permissions.ts"
import {
  BlobStore,
  type BlobStoreError,
  type InvalidKey,
  type PresignUnsupported,
  type SignedDownload,
  type SignedUrlRefused,
} from "../../shared/BlobStore.ts"
import { Db, type DbError } from "../../shared/Db.ts"
import { Idempotency } from "../../shared/Idempotency.ts"
import * as Jobs from "../../shared/Jobs.ts"
import * as Problem from "../../shared/Problem.ts"
import {
  BadRequest,
  Conflict,
  Forbidden,
  type IdempotencyKeyReused,
  NotFound,
  PayloadTooLarge,
  type ServiceUnavailable,
  UnsupportedMediaType,
  UploadMismatch,
  ValidationFailed,
} from "../../shared/Problem.ts"
import type { BlogConfig } from "./Config.ts"
import { Attachment } from "./Post.ts"
import { Posts } from "./Posts.ts"

// A post's attachments go straight from the client to storage: `create` records a pending attachment and hands out a
// presigned POST (S3's POST Object, or with the embedded store a signed URL of the blog itself) whose policy pins the
// object's key, the declared content type and the declared size; `complete` compares the stored object with the
// declaration (HEAD) before the attachment is ready; nothing of the file passes through the blog on S3.

/** The content types an attachment may have unless `BLOG_ATTACHMENT_TYPES` says otherwise. */
export const DEFAULT_ATTACHMENT_TYPES: ReadonlyArray<string> = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "application/pdf",
]

/** The largest attachment unless `BLOG_ATTACHMENT_MAX_BYTES` says otherwise: 10 MiB. */
export const DEFAULT_ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024

/** The most `BLOG_ATTACHMENT_MAX_BYTES` may be: the embedded upload route's body limit is derived from it. */
export const ATTACHMENT_MAX_BYTES_LIMIT = 100 * 1024 * 1024

/** What an upload form carries besides its file (boundaries, the two fields): the upload route allows it on top. */
export const FORM_OVERHEAD_BYTES = 64 * 1024

/** How long an upload URL lasts: 15 minutes, the most the contract allows. */
export const UPLOAD_SECONDS = 900

/** How long the download URL an attachment's link redirects to lasts. */
export const DOWNLOAD_SECONDS = 300

/** How long an attachment may stay pending before the cleanup job removes it, and its object. */
export const PENDING_HOURS = 24

/** The cron job that removes abandoned uploads, deleted attachments and those of deleted posts (declared in App.ts). */
export const CLEANUP_JOB = "attachments-cleanup"

/** The most attachments one post may have (pending ones included): a bound on what one author can store. */
export const MAX_ATTACHMENTS = 100

/** Where the blog serves the embedded store's signed URLs (`/blobs/<token>`: uploads by POST, downloads by GET). */
export const BLOBS_PATH = "/api/v1/blog/blobs"

// A media type as `type/subtype` (RFC 6838 restricted names), lowercase; parameters are not part of it.
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/

/** A content-type list setting (`BLOG_ATTACHMENT_TYPES`): comma-separated lowercase `type/subtype`, at least one. */
export const contentTypeList = (name: string) =>
  Config.schema(
    Schema.String.check(
      Schema.makeFilter(
        (list: string) => {
          const types = list.split(",").map((t) => t.trim())
          return types.every((t) => MEDIA_TYPE.test(t)) || "Expected lowercase type/subtype names, comma-separated"
        },
        { message: "Expected lowercase type/subtype names, comma-separated" },
      ),
    ),
    name,
  ).pipe(Config.map((list): ReadonlyArray<string> => list.split(",").map((t) => t.trim())))

/** What an attachment may be: its allowed content types and largest size (blog's configuration). */
export interface AttachmentRules {
  readonly types: ReadonlyArray<string>
  readonly maxBytes: number
}

// Control characters have no place in a file's name (and NUL cannot be stored in Postgres).
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u001F\u007F]/u

/** What a writer declares to upload a file: its name (shown to readers), content type and exact size in bytes. */
export const NewAttachment = Schema.Struct({
  filename: Schema.String.check(
    Schema.isMaxCodePoints(255, { message: "must be at most 255 characters" }),
    Schema.makeFilter((s: string) => s.trim().length > 0, { message: "must not be blank" }),
    Schema.makeFilter((s: string) => !CONTROL.test(s), { message: "must not contain control characters" }),
  ),
  contentType: Schema.String.check(
    Schema.isPattern(MEDIA_TYPE, { message: "must be a lowercase media type (image/png)" }),
  ),
  size: Schema.Int.check(
    Schema.isBetween(
      { minimum: 1, maximum: ATTACHMENT_MAX_BYTES_LIMIT },
      { message: `must be a whole number of bytes from 1 to ${ATTACHMENT_MAX_BYTES_LIMIT}` },
    ),
  ),
})
export type NewAttachment = typeof NewAttachment.Type

/** An upload the client sends straight to storage: an HTML-form POST of `fields` (in order), then the file, to `url`. */
export const Upload = Schema.Struct({
  method: Schema.Literal("POST"),
  url: Schema.String,
  fields: Schema.Record(Schema.String, Schema.String),
  expiresAt: Schema.String,
})
export type Upload = typeof Upload.Type

/** What `POST .../attachments` answers: the pending attachment and its upload. */
export const Created = Schema.Struct({ attachment: Attachment, upload: Upload })
export type Created = typeof Created.Type

interface Row {
  readonly id: string
  readonly post_id: string | null
  readonly filename: string
  readonly content_type: string
  readonly size: number
  readonly status: "pending" | "ready" | "deleted"
  readonly object_key: string
  readonly [column: string]: unknown
}

const COLUMNS = "id, post_id, filename, content_type, size, status, object_key"

/** SQLSTATE foreign_key_violation: the post an attachment names is gone. */
const FOREIGN_KEY_VIOLATION = "23503"

const unavailable = Problem.unavailable("attachments unavailable", "the blog is unavailable, retry later")
const storageUnavailable = Problem.unavailable("blob store unavailable", "file storage is unavailable, retry later")

// Named by ids only, so nothing a client sends (a filename) ever reaches a storage key.
const objectKey = (postId: string, id: string) => `blog/posts/${postId}/attachments/${id}`

/** The stable link of an attachment: the blog's route that redirects to a fresh download URL. */
const linkOf = (baseUrl: string, postId: string, id: string) =>
  `${baseUrl}/api/v1/blog/posts/${postId}/attachments/${id}`

const toAttachment = (baseUrl: string, row: Row): Attachment => ({
  id: row.id,
  filename: row.filename,
  contentType: row.content_type,
  size: row.size,
  status: row.status === "ready" ? "ready" : "pending",
  url: row.status === "ready" && row.post_id !== null ? linkOf(baseUrl, row.post_id, row.id) : null,
})

/**
 * The attachments posts show: each post's, oldest first, a ready one with its link. Posts' reads call it, so it needs
 * only the database (no storage, no permission): the link is stable, and what it redirects to is decided when followed.
 */
export class Attachments extends Context.Service<
  Attachments,
  {
    /** The attachments of these posts by post id (pending and ready; a post without any is absent). */
    attachmentsOf(
      postIds: ReadonlyArray<string>,
    ): Effect.Effect<ReadonlyMap<string, ReadonlyArray<Attachment>>, DbError>
  }
>()("blog/Attachments") {
  /** Over the `attachments` table; `baseUrl` is the platform's public URL (the links' origin). */
  static readonly layer = (options: { readonly baseUrl: string }) =>
    Layer.effect(
      Attachments,
      Effect.map(Effect.service(Db), (db) => {
        const baseUrl = options.baseUrl.replace(/\/+$/, "")
        return Attachments.of({
          attachmentsOf: (postIds) =>
            db
              .query<Row>(
                `SELECT ${COLUMNS} FROM ${db.schema}.attachments
                 WHERE post_id = ANY($1::uuid[]) AND status <> 'deleted' ORDER BY post_id, created_at, id`,
                [postIds],
              )
              .pipe(
                Effect.map((rows) => {
                  const byPost = new Map<string, Array<Attachment>>()
                  for (const row of rows) {
                    const postId = row.post_id as string
                    const list = byPost.get(postId) ?? []
                    list.push(toAttachment(baseUrl, row))
                    byPost.set(postId, list)
                  }
                  return byPost
                }),
              ),
        })
      }),
    )
}

/** The writers' side of attachments: uploads granted, completed, deleted; the embedded store's signed URLs served. */
export class Uploads extends Context.Service<
  Uploads,
  {
    /**
     * A pending attachment of a post the caller may edit (the rule of `PATCH`), with its upload: a presigned POST valid
     * `UPLOAD_SECONDS` pinning the key, the declared type and exactly the declared size. A type or size the rules do
     * not allow is a 400 naming the field; more than `MAX_ATTACHMENTS` on the post, a 409. With an `Idempotency-Key`
     * a repeat answers the first attachment and upload.
     */
    create(
      callerId: string,
      postId: string,
      input: NewAttachment,
      idempotencyKey: Option.Option<string>,
    ): Effect.Effect<
      Created,
      NotFound | Forbidden | Conflict | ValidationFailed | IdempotencyKeyReused | ServiceUnavailable,
      Permissions
    >
    /**
     * Marks the attachment ready once its object is stored with the declared size and type (HEAD); a mismatch deletes
     * the object and is a 422 (the attachment stays pending: it may be uploaded again while its URL lasts); nothing
     * stored yet is a 409. Completing a ready attachment again answers it as it is.
     */
    complete(
      callerId: string,
      postId: string,
      attachmentId: string,
    ): Effect.Effect<Attachment, NotFound | Forbidden | Conflict | UploadMismatch | ServiceUnavailable, Permissions>
    /** Deletes the attachment and its object (storage unreachable: the cleanup job deletes the object later). */
    remove(
      callerId: string,
      postId: string,
      attachmentId: string,
    ): Effect.Effect<void, NotFound | Forbidden | ServiceUnavailable, Permissions>
    /** Where a ready attachment's link leads now: a download URL valid `DOWNLOAD_SECONDS`. */
    download(postId: string, attachmentId: string): Effect.Effect<string, NotFound | ServiceUnavailable>
    /** Takes an upload sent to the embedded store's signed URL (the same form as S3's POST Object). */
    receive(
      token: string,
      parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>,
    ): Effect.Effect<void, Forbidden | BadRequest | UnsupportedMediaType | PayloadTooLarge | ServiceUnavailable>
    /** The object a signed download URL of the embedded store names. */
    serve(token: string): Effect.Effect<SignedDownload, Forbidden | NotFound | ServiceUnavailable>
    /**
     * The cleanup job: attachments pending for `PENDING_HOURS` are deleted; then every deleted attachment and every
     * attachment of a deleted post whose upload URL has expired (none can bring its object back) loses its object,
     * then its row. Returns how many were removed.
     */
    cleanup(): Effect.Effect<number, DbError | ServiceUnavailable>
  }
>()("blog/Uploads") {
  /** Over the `attachments` table, the blob store, Posts (the rule of PATCH) and the kernel's idempotency keys. */
  static readonly layer = (options: AttachmentRules & { readonly baseUrl: string }) =>
    Layer.effect(
      Uploads,
      Effect.gen(function* () {
        const db = yield* Db
        const store = yield* BlobStore
        const posts = yield* Posts
        const idempotency = yield* Idempotency
        const table = `${db.schema}.attachments`
        /**
         * `statement` (a write returning attachment rows) with their posts moved to a new version: a post shows its
         * attachments, so a change to them is a change to the post (its ETag, and an If-Match on the old one, are stale).
         */
        const newVersion = (statement: string) =>
          `WITH changed AS (${statement}),
           bumped AS (UPDATE ${db.schema}.posts SET version = version + 1, updated_at = now()
                      WHERE id IN (SELECT post_id FROM changed))
           SELECT * FROM changed`
        const baseUrl = options.baseUrl.replace(/\/+$/, "")
        const view = (row: Row) => toAttachment(baseUrl, row)

        const notFound = (id: string) => new NotFound({ detail: `no attachment ${id} on this post` })
        const invalid = (path: string, message: string) =>
          new ValidationFailed({ detail: "The attachment cannot be accepted", errors: [{ path, message }] })

        // The rule of PATCH, as Posts applies it (404 for a post the caller may not see, 403 for one they may only
        // read): an empty change writes nothing, so it is that rule and nothing else.
        const mayEdit = (callerId: string, postId: string) =>
          posts
            .update(callerId, postId, {}, undefined)
            .pipe(Effect.asVoid, Effect.catchTags({ PreconditionFailed: Effect.die, Conflict: Effect.die }))

        const byId = (postId: string, id: string) =>
          db
            .query<Row>(`SELECT ${COLUMNS} FROM ${table} WHERE id = $1 AND post_id = $2 AND status <> 'deleted'`, [
              id,
              postId,
            ])
            .pipe(
              Effect.catchTag("DbError", unavailable),
              Effect.flatMap(([row]) => (row === undefined ? Effect.fail(notFound(id)) : Effect.succeed(row))),
            )

        // Storage failures are retryable outages; a key or an option the blog made itself that storage refuses is
        // the blog's defect.
        const storage = <A>(effect: Effect.Effect<A, BlobStoreError | InvalidKey | PresignUnsupported>) =>
          effect.pipe(
            Effect.catchTags({
              BlobStoreError: storageUnavailable,
              InvalidKey: Effect.die,
              PresignUnsupported: Effect.die,
            }),
          )

        const create = Effect.fn("Uploads.create")(function* (
          callerId: string,
          postId: string,
          input: NewAttachment,
          idempotencyKey: Option.Option<string>,
        ) {
          if (!options.types.includes(input.contentType)) {
            return yield* invalid("contentType", `must be one of ${options.types.join(", ")}`)
          }
          if (input.size > options.maxBytes) return yield* invalid("size", `must be at most ${options.maxBytes} bytes`)
          // Outside the key's transaction: the check may ask authz, and a transaction never spans a remote call.
          yield* mayEdit(callerId, postId)
          const grant = Effect.gen(function* () {
            const id = randomUUID()
            const key = objectKey(postId, id)
            const post = yield* storage(
              store.presignPost(key, {
                contentType: input.contentType,
                minBytes: input.size,
                maxBytes: input.size,
                expiresInSeconds: UPLOAD_SECONDS,
              }),
            )
            const [row] = yield* db.query<Row>(
              newVersion(`INSERT INTO ${table}
                 (id, post_id, filename, content_type, size, status, object_key, created_by, created_at, upload_expires_at)
               SELECT $1, $2, $3, $4, $5, 'pending', $6, $7, now(), $8
               WHERE (SELECT count(*) FROM ${table} WHERE post_id = $2 AND status <> 'deleted') < $9
               RETURNING ${COLUMNS}`),
              [
                id,
                postId,
                input.filename,
                input.contentType,
                input.size,
                key,
                callerId,
                post.expiresAt,
                MAX_ATTACHMENTS,
              ],
            )
            if (row === undefined) {
              return yield* new Conflict({ detail: `a post has at most ${MAX_ATTACHMENTS} attachments` })
            }
            const upload: Upload = {
              method: "POST",
              url: post.url,
              fields: post.fields,
              expiresAt: post.expiresAt.toISOString(),
            }
            return { attachment: view(row), upload }
          })
          return yield* idempotency
            .once(
              { caller: callerId, key: idempotencyKey, request: { route: "attachments.create", postId, input } },
              Created,
              grant,
            )
            .pipe(
              Effect.catchTags({
                // The post went away since the check: its attachments cannot refer to it.
                DbError: (error) =>
                  error.code === FOREIGN_KEY_VIOLATION ? Effect.fail(notFound(postId)) : unavailable(error),
                // An answer kept under the key that no longer reads as one: a defect, not the client's fault.
                SchemaError: Effect.die,
              }),
            )
        })

        const complete = Effect.fn("Uploads.complete")(function* (
          callerId: string,
          postId: string,
          attachmentId: string,
        ) {
          yield* mayEdit(callerId, postId)
          const row = yield* byId(postId, attachmentId)
          if (row.status === "ready") return view(row)
          const stored = yield* storage(store.head(row.object_key))
          if (Option.isNone(stored)) {
            return yield* new Conflict({ detail: "nothing has been uploaded for this attachment yet" })
          }
          const { size, contentType } = stored.value
          const differences = [
            ...(size === row.size ? [] : [`${size} bytes stored, ${row.size} declared`]),
            ...(contentType === row.content_type
              ? []
              : [`stored as ${contentType ?? "no type"}, declared ${row.content_type}`]),
          ]
          if (differences.length > 0) {
            yield* storage(store.delete(row.object_key))
            return yield* new UploadMismatch({
              detail: `the upload is not what was declared (${differences.join("; ")}); it has been deleted`,
            })
          }
          const [ready] = yield* db
            .query<Row>(
              newVersion(`UPDATE ${table} SET status = 'ready', completed_at = now()
               WHERE id = $1 AND status = 'pending' RETURNING ${COLUMNS}`),
              [row.id],
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          // Completed (or deleted) meanwhile by another request: as it is now.
          return ready === undefined ? view(yield* byId(postId, attachmentId)) : view(ready)
        })

        const remove = Effect.fn("Uploads.remove")(function* (callerId: string, postId: string, attachmentId: string) {
          yield* mayEdit(callerId, postId)
          const row = yield* byId(postId, attachmentId)
          // Marked deleted before its object goes: an upload through a URL still valid cannot bring it back unseen,
          // as the cleanup job deletes the object again once that URL has expired.
          yield* db
            .query(
              newVersion(
                `UPDATE ${table} SET status = 'deleted' WHERE id = $1 AND status <> 'deleted' RETURNING post_id`,
              ),
              [row.id],
            )
            .pipe(Effect.catchTag("DbError", unavailable))
          yield* store.delete(row.object_key).pipe(
            Effect.catchTag("BlobStoreError", (error) =>
              Effect.logWarning("attachment object not deleted; the cleanup job will", { error: error.message }),
            ),
            Effect.catchTag("InvalidKey", Effect.die),
          )
        })

        const download = Effect.fn("Uploads.download")(function* (postId: string, attachmentId: string) {
          const row = yield* byId(postId, attachmentId)
          if (row.status !== "ready") return yield* notFound(attachmentId)
          return yield* storage(store.presignGet(row.object_key, { expiresInSeconds: DOWNLOAD_SECONDS }))
        })

        const refused = (error: SignedUrlRefused) => {
          switch (error.reason) {
            case "signature":
            case "expired":
              return new Forbidden({ detail: error.detail })
            case "type":
              return new UnsupportedMediaType({ detail: error.detail })
            case "too_large":
              return new PayloadTooLarge({ detail: error.detail })
            default:
              return new BadRequest({ detail: error.detail })
          }
        }

        const receive = Effect.fn("Uploads.receive")(function* (
          token: string,
          parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>,
        ) {
          yield* store.receivePost(token, parts).pipe(
            Effect.catchTags({
              SignedUrlRefused: (error) => Effect.fail(refused(error)),
              BlobStoreError: storageUnavailable,
            }),
          )
        })

        const serve = Effect.fn("Uploads.serve")(function* (token: string) {
          const found = yield* store.openSigned(token).pipe(
            Effect.catchTags({
              SignedUrlRefused: (error) => Effect.fail(new Forbidden({ detail: error.detail })),
              BlobStoreError: storageUnavailable,
            }),
          )
          if (Option.isNone(found)) return yield* new NotFound({ detail: "the file is gone" })
          return found.value
        })

        const BATCH = 100
        const cleanup = Effect.fn("Uploads.cleanup")(function* () {
          yield* db.query(
            newVersion(`UPDATE ${table} SET status = 'deleted'
             WHERE status = 'pending' AND created_at < now() - make_interval(hours => $1) RETURNING post_id`),
            [PENDING_HOURS],
          )
          let removed = 0
          for (;;) {
            const gone = yield* db.query<{ id: string; object_key: string }>(
              `SELECT id, object_key FROM ${table}
               WHERE (status = 'deleted' OR post_id IS NULL) AND upload_expires_at < now()
               ORDER BY upload_expires_at LIMIT $1`,
              [BATCH],
            )
            for (const row of gone) {
              // The object first: a row is only ever removed once its object is.
              yield* storage(store.delete(row.object_key))
              yield* db.query(`DELETE FROM ${table} WHERE id = $1`, [row.id])
              removed++
            }
            if (gone.length < BATCH) break
          }
          if (removed > 0) yield* Effect.logInfo("attachments cleaned up", { removed })
          return removed
        })

        return Uploads.of({ create, complete, remove, download, receive, serve, cleanup })
      }),
    )
}

/**
 * Attachments under blog's domain: `Uploads` over the domain's `Posts`, and below it `Attachments` (which Posts' reads
 * use) and the blob store its configuration names, whose signed URLs (the embedded store) blog serves at `BLOBS_PATH`.
 */
export const withAttachments =
  (config: BlogConfig) =>
  <A, E, R>(domain: Layer.Layer<A, E, R>) => {
    const baseUrl = config.appBaseUrl.toString().replace(/\/+$/, "")
    return Uploads.layer({ types: config.attachmentTypes, maxBytes: config.attachmentMaxBytes, baseUrl }).pipe(
      Layer.provideMerge(domain),
      Layer.provideMerge(Attachments.layer({ baseUrl })),
      Layer.provideMerge(BlobStore.layerFrom(config, { signedUrlBase: `${baseUrl}${BLOBS_PATH}` })),
    )
  }

/**
 * The cleanup job, every 10 minutes (one instance per tick): see `Uploads.cleanup`. Typed as needing Posts too: an
 * app's jobs are declared with one requirement type, and blog's others need Posts.
 */
export const cleanupJob = Jobs.cron<Uploads | Posts>("*/10 * * * *", () =>
  Effect.flatMap(Effect.service(Uploads), (uploads) => Effect.asVoid(uploads.cleanup())),
)
