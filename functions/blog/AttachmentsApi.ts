import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import * as Route from "../../shared/access/Route.ts"
import { FORM_LIMITS } from "../../shared/BlobForms.ts"
import {
  BadRequest,
  Conflict,
  Forbidden,
  IdempotencyKeyReused,
  NotFound,
  PayloadTooLarge,
  ServiceUnavailable,
  UnsupportedMediaType,
  UploadMismatch,
  ValidationFailed,
} from "../../shared/Problem.ts"
import {
  ATTACHMENT_MAX_BYTES_LIMIT,
  BLOBS_PATH,
  Created,
  FORM_OVERHEAD_BYTES,
  NewAttachment,
  UPLOAD_SECONDS,
} from "./Attachments.ts"
import { Attachment, PostId } from "./Post.ts"

/** An attachment's id (a UUID). */
const AttachmentId = PostId

/** A signed URL's token: its grant and signature, base64url, joined by a dot. */
const Token = Schema.String.check(
  Schema.isMaxLength(1024, { message: "must be at most 1024 characters" }),
  Schema.isPattern(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, { message: "must be a signed URL token" }),
)

/** The largest upload form the embedded store's upload route takes: the largest file allowed and the form around it. */
const UPLOAD_BODY_LIMIT = ATTACHMENT_MAX_BYTES_LIMIT + FORM_OVERHEAD_BYTES

/** An upload form as S3's POST Object takes it: the fields `create` handed out, then the file (read as a stream). */
const UploadForm = Schema.Struct({
  key: Schema.String,
  "Content-Type": Schema.String,
  file: Schema.String.annotate({ format: "binary" }),
}).pipe(
  HttpApiSchema.asMultipartStream({ ...FORM_LIMITS, maxFileSize: UPLOAD_BODY_LIMIT, maxTotalSize: UPLOAD_BODY_LIMIT }),
)

const ids = { id: PostId, attachmentId: AttachmentId }

// An upload or a download of a large file takes longer than an API call.
const TRANSFER_TIMEOUT_MS = 300_000

/**
 * A post's attachments: uploaded straight to storage with a presigned POST (S3's POST Object; with the embedded store
 * a signed URL of the blog itself, the `blobs` routes), completed once the stored object matches what was declared.
 */
export class AttachmentsApi extends HttpApiGroup.make("attachments")
  .add(
    HttpApiEndpoint.post("create", "/api/v1/blog/posts/:id/attachments", {
      params: { id: PostId },
      headers: { "idempotency-key": Schema.optional(Schema.String) },
      payload: NewAttachment,
      success: Created.pipe(HttpApiSchema.status(201)),
      error: [NotFound, Forbidden, Conflict, IdempotencyKeyReused, ValidationFailed, ServiceUnavailable],
    })
      // Signed in; that the caller may edit the post (the rule of PATCH) is the domain's check.
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        `Declare a file {filename, contentType, size} and get its upload: an HTML-form POST of fields then file, valid ${UPLOAD_SECONDS / 60} minutes`,
      ),
    HttpApiEndpoint.post("complete", "/api/v1/blog/posts/:id/attachments/:attachmentId/complete", {
      params: ids,
      success: Attachment,
      error: [NotFound, Forbidden, Conflict, UploadMismatch, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(
        OpenApi.Summary,
        "Mark the attachment ready once the stored file has the declared size and type (else 422, the file deleted)",
      ),
    HttpApiEndpoint.delete("delete", "/api/v1/blog/posts/:id/attachments/:attachmentId", {
      params: ids,
      success: HttpApiSchema.NoContent,
      error: [NotFound, Forbidden, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.signedIn())
      .annotate(OpenApi.Summary, "Delete an attachment and its file"),
    HttpApiEndpoint.get("download", "/api/v1/blog/posts/:id/attachments/:attachmentId", {
      params: ids,
      success: HttpApiSchema.Empty(302),
      error: [NotFound, ValidationFailed, ServiceUnavailable],
    })
      // Open: the link is the attachment's `url`, shown with the post; it redirects to a short-lived download URL.
      .pipe(Route.open())
      .annotate(OpenApi.Summary, "A ready attachment's file: a redirect to a download URL valid a few minutes"),
    HttpApiEndpoint.post("upload", `${BLOBS_PATH}/:token`, {
      params: { token: Token },
      payload: UploadForm,
      success: HttpApiSchema.NoContent,
      error: [Forbidden, BadRequest, UnsupportedMediaType, PayloadTooLarge, ValidationFailed, ServiceUnavailable],
    })
      // Open, as S3's upload URL is: the signed token is the permission, checked before the form is read.
      .pipe(Route.open({ maxBodyBytes: UPLOAD_BODY_LIMIT, timeoutMs: TRANSFER_TIMEOUT_MS }))
      .annotate(
        OpenApi.Summary,
        "The embedded store's upload URL (what `create` hands out without S3): the form's fields, then the file",
      ),
    HttpApiEndpoint.get("blob", `${BLOBS_PATH}/:token`, {
      params: { token: Token },
      success: HttpApiSchema.StreamUint8Array(),
      error: [Forbidden, NotFound, ValidationFailed, ServiceUnavailable],
    })
      .pipe(Route.open({ timeoutMs: TRANSFER_TIMEOUT_MS }))
      .annotate(OpenApi.Summary, "The embedded store's download URL (where an attachment's link redirects without S3)"),
  )
  .annotate(OpenApi.Description, "Attachments of posts, uploaded straight to storage") {}
