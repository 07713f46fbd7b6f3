import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser } from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as Idempotency from "../../shared/Idempotency.ts"
import { BlogApi } from "./Api.ts"
import { Uploads } from "./Attachments.ts"

/**
 * What a download from the blog's own origin is sent with: never sniffed as another type, and sandboxed with no
 * script (an uploaded file is the uploader's content, not the platform's).
 */
const DOWNLOAD_HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "sandbox; default-src 'none'",
  "cache-control": "private, max-age=60",
}

/** Handlers of the attachments group. */
export const AttachmentsHttp = HttpApiBuilder.group(
  BlogApi,
  "attachments",
  Effect.fn(function* (handlers) {
    const uploads = yield* Uploads
    // The ownership rules ask authz per call: the permissions the app is built with (stand-ins included).
    const permissions = yield* Permissions
    const asCaller = <A, E>(f: (userId: string) => Effect.Effect<A, E, Permissions>) =>
      Effect.flatMap(Effect.service(CurrentUser), (user) =>
        f(user.userId).pipe(Effect.provideService(Permissions, permissions)),
      )
    return handlers
      .handle("create", ({ params, headers, payload }) =>
        Effect.flatMap(Idempotency.keyOf(headers), (key) =>
          asCaller((userId) => uploads.create(userId, params.id, payload, key)),
        ),
      )
      .handle("complete", ({ params }) =>
        asCaller((userId) => uploads.complete(userId, params.id, params.attachmentId)),
      )
      .handle("delete", ({ params }) => asCaller((userId) => uploads.remove(userId, params.id, params.attachmentId)))
      .handle("download", ({ params }) =>
        Effect.map(uploads.download(params.id, params.attachmentId), (url) =>
          HttpServerResponse.redirect(url, { status: 302, headers: { "cache-control": "no-store" } }),
        ),
      )
      .handle("upload", ({ params, payload }) => uploads.receive(params.token, payload))
      .handle("blob", ({ params }) =>
        Effect.map(uploads.serve(params.token), (file) =>
          HttpServerResponse.stream(file.body, {
            contentType: file.contentType ?? "application/octet-stream",
            contentLength: file.size,
            headers: DOWNLOAD_HEADERS,
          }),
        ),
      )
  }),
)
