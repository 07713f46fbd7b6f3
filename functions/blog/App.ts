import { Effect, Layer, Schema } from "effect"
import { HttpRouter } from "effect/http"
import * as Authentication from "../../shared/access/Authentication.ts"
import { Permissions } from "../../shared/access/Permissions.ts"
import * as FunctionApp from "../../shared/FunctionApp.ts"
import { Idempotency } from "../../shared/Idempotency.ts"
import * as Jobs from "../../shared/Jobs.ts"
import * as Kernel from "../../shared/Kernel.ts"
import { Outbox } from "../../shared/Outbox.ts"
import { revocationsFor } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { manifests } from "../registry.ts"
import { BlogApi } from "./Api.ts"
import { CLEANUP_JOB, cleanupJob, withAttachments } from "./Attachments.ts"
import { type BlogConfig, loadConfig } from "./Config.ts"
import { FeedSettings } from "./Feed.ts"
import { HttpLive } from "./Http.ts"
import { manifest } from "./module.ts"
import { OVERDUE_JOB, Posts, PUBLISH_JOB, PublishJob } from "./Posts.ts"
import { PostsRepo } from "./PostsRepo.ts"

/** Blog's domain: posts over their repository and outbox (search in `BLOG_SEARCH_LANGUAGE`), the feed's settings. */
export const DomainLive = (config: BlogConfig) =>
  Layer.merge(
    Posts.layer({ searchLanguage: config.searchLanguage }).pipe(
      Layer.provide([PostsRepo.layer, Outbox.layer(manifest)]),
    ),
    Layer.succeed(FeedSettings, FeedSettings.of({ baseUrl: config.appBaseUrl.toString(), title: config.feedTitle })),
  )

/**
 * How blog enforces its own routes (zero trust): bearer tokens against auth's JWKS and the session revocations (the
 * open read of a post verifies a token itself when one is sent), and permissions through authz's `Authorize` (answers
 * reused ≤ 500 ms) for the routes and the ownership rules. Needs `SessionRevocations` and `ServiceIdentity`.
 */
export const AccessLive = (config: BlogConfig) =>
  Layer.merge(
    Authentication.layer({ issuer: config.jwtIssuer, audience: config.jwtAudience, jwks: { url: config.authJwksUrl } }),
    Permissions.layer({ address: config.authzGrpcUrl, ttlMs: 500 }),
  )

/**
 * How blog's router reads paths: a slug may be 120 characters, past the router's default bound on a path parameter
 * (100, beyond which a route does not match: a 404). Up to 1,024 a parameter reaches the contract, which answers 400.
 */
export const Routing = Layer.succeed(HttpRouter.RouterConfig, { maxParamLength: 1024 })

/** Blog's identity on internal calls (its service tokens to authz); no function depends on it. */
export const Identity = (config: BlogConfig) => Kernel.identity(manifest, manifests, config)

/** The kernel infrastructure blog runs on (logging, telemetry, health, Postgres + migrations), from config. */
export const Infrastructure = (config: BlogConfig) => Kernel.foundation(manifest, config)

/**
 * The event side of the container: the relay of blog's outbox (with Kafka) and the bus the session revocations follow.
 * Lambda leaves it out: its outbox rows wait for the containers.
 */
export const Bus = (config: BlogConfig) => Kernel.events(manifest, config)

/** The container's background work: authz's changes clear the permission cache. */
export const Background = () => Permissions.following(manifest.name, permissionChanges)

/** The publish job of a scheduled post (enqueued at its time by `Posts.publish`). */
const publishScheduled = (data: unknown) =>
  Effect.gen(function* () {
    const job = yield* Schema.decodeUnknownEffect(PublishJob)(data)
    const posts = yield* Posts
    yield* posts.publishScheduled(job.postId, job.publishAt)
  })

/**
 * Blog as its entries and tests run it: its HTTP contract (every route enforced as declared) and its jobs: each
 * scheduled post's publish job at its time (retried quickly: the contract promises publication within 5 s), and a
 * sweep every minute for a scheduled post whose job failed for good.
 */
export const app = FunctionApp.define({
  manifest,
  api: BlogApi,
  config: loadConfig,
  http: HttpLive,
  background: Background,
  jobs: {
    [PUBLISH_JOB]: Jobs.onDemand(publishScheduled, { retry: { limit: 10, delaySeconds: 1, maxDelaySeconds: 30 } }),
    [CLEANUP_JOB]: cleanupJob,
    [OVERDUE_JOB]: Jobs.cron("* * * * *", () =>
      Effect.flatMap(Effect.service(Posts), (posts) => Effect.asVoid(posts.publishOverdue())),
    ),
  },
  services: (config, runtime) =>
    DomainLive(config).pipe(
      withAttachments(config),
      Layer.merge(Routing),
      Layer.provideMerge(AccessLive(config)),
      Layer.provideMerge(revocationsFor(manifest.name, runtime, Bus(config))),
      Layer.provideMerge(Idempotency.layer),
      Layer.provideMerge(Identity(config)),
      Layer.provideMerge(Infrastructure(config)),
    ),
})
