import { Effect, Layer } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { CurrentUser, optionalCaller, Verifier } from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import { OPENAPI_PATH } from "../../shared/access/RouteGuard.ts"
import * as Idempotency from "../../shared/Idempotency.ts"
import * as Jobs from "../../shared/Jobs.ts"
import * as Problem from "../../shared/Problem.ts"
import { validationProblems } from "../../shared/Server.ts"
import { BlogApi } from "./Api.ts"
import { AttachmentsHttp } from "./AttachmentsHttp.ts"
import { ATOM, atom, FEED_SIZE, FeedSettings } from "./Feed.ts"
import { Post } from "./Post.ts"
import { Posts } from "./Posts.ts"
import { etagOf, noneMatchFails, parseCondition } from "./Preconditions.ts"

// A post with its version as its strong ETag; one only its author (or a reader of everything) may see is never cached
// by a shared cache.
const versioned = (post: Post, options: { readonly status?: number; readonly location?: boolean } = {}) =>
  HttpServerResponse.jsonUnsafe(post, {
    status: options.status ?? 200,
    headers: {
      etag: etagOf(post.version),
      ...(post.status === "published" ? {} : { "cache-control": "private, no-store" }),
      ...(options.location ? { location: `/api/v1/blog/posts/${post.id}` } : {}),
    },
  })

const unavailable = Problem.unavailable("database unavailable", "the blog is unavailable, retry later")

// The services the domain asks per call (the ownership rules' permissions, the scheduling of posts): those the app
// is built with, stand-ins included.
const callServices = Effect.gen(function* () {
  const permissions = yield* Permissions
  const jobs = yield* Jobs.Jobs
  return <A, E>(effect: Effect.Effect<A, E, Permissions | Jobs.Jobs>) =>
    effect.pipe(Effect.provideService(Permissions, permissions), Effect.provideService(Jobs.Jobs, jobs))
})

/** Handlers of the public reads. */
export const ReadingHttp = HttpApiBuilder.group(
  BlogApi,
  "reading",
  Effect.fn(function* (handlers) {
    const posts = yield* Posts
    const feed = yield* FeedSettings
    const provide = yield* callServices
    const verifier = yield* Verifier
    return handlers
      .handle("list", ({ query }) => posts.list(query))
      .handle("get", ({ params, headers, request }) =>
        Effect.gen(function* () {
          const ifNoneMatch = yield* parseCondition("if-none-match", headers["if-none-match"])
          const caller = yield* optionalCaller(verifier, request.headers.authorization)
          if (caller.refused !== undefined) return caller.refused
          const post = yield* provide(posts.read(params.id, caller.userId))
          if (ifNoneMatch !== undefined && noneMatchFails(ifNoneMatch, post.version)) {
            return HttpServerResponse.empty({ status: 304, headers: { etag: etagOf(post.version) } })
          }
          return versioned(post)
        }),
      )
      .handle("feed", () =>
        Effect.map(posts.latest(FEED_SIZE), (latest) =>
          HttpServerResponse.text(atom({ baseUrl: feed.baseUrl, title: feed.title, posts: latest }), {
            contentType: ATOM,
          }),
        ),
      )
      .handle("tags", () => Effect.map(posts.tags(), (items) => ({ items })))
  }),
)

/** Handlers of the writers' routes (signed in; the ownership rules are the domain's). */
export const WritingHttp = HttpApiBuilder.group(
  BlogApi,
  "writing",
  Effect.fn(function* (handlers) {
    const posts = yield* Posts
    const idempotency = yield* Idempotency.Idempotency
    const provide = yield* callServices
    const caller = Effect.map(Effect.service(CurrentUser), (user) => user.userId)
    return handlers
      .handle("mine", ({ query }) => Effect.flatMap(caller, (userId) => posts.mine(userId, query)))
      .handle("create", ({ headers, payload }) =>
        Effect.gen(function* () {
          const userId = yield* caller
          const key = yield* Idempotency.keyOf(headers)
          const post = yield* idempotency
            .once({ caller: userId, key, request: { route: "create", payload } }, Post, posts.create(userId, payload))
            .pipe(
              Effect.catchTags({
                DbError: unavailable,
                // An answer kept under the key that no longer reads as a post: a defect, not the client's fault.
                SchemaError: (error) => Effect.die(error),
              }),
            )
          return versioned(post, { status: 201, location: true })
        }),
      )
      .handle("update", ({ params, headers, payload }) =>
        Effect.gen(function* () {
          const ifMatch = yield* parseCondition("if-match", headers["if-match"])
          return versioned(yield* provide(posts.update(yield* caller, params.id, payload, ifMatch)))
        }),
      )
      .handle("publish", ({ params, headers, payload }) =>
        Effect.gen(function* () {
          const ifMatch = yield* parseCondition("if-match", headers["if-match"])
          return versioned(yield* provide(posts.publish(yield* caller, params.id, payload ?? {}, ifMatch)))
        }),
      )
      .handle("unpublish", ({ params, headers }) =>
        Effect.gen(function* () {
          const ifMatch = yield* parseCondition("if-match", headers["if-match"])
          return versioned(yield* provide(posts.unpublish(yield* caller, params.id, ifMatch)))
        }),
      )
      .handle("delete", ({ params, headers }) =>
        Effect.gen(function* () {
          const ifMatch = yield* parseCondition("if-match", headers["if-match"])
          yield* provide(posts.remove(yield* caller, params.id, ifMatch))
        }),
      )
  }),
)

/**
 * Blog's HTTP routes, ready to serve; needs `Posts`, `Idempotency`, `FeedSettings`, `Verifier`, `Permissions` and
 * `Jobs`.
 */
export const HttpLive = HttpApiBuilder.layer(BlogApi, { openapiPath: OPENAPI_PATH }).pipe(
  Layer.provide([ReadingHttp, WritingHttp, AttachmentsHttp]),
  Layer.provide(validationProblems),
)
