import { Config, type Effect, Schema } from "effect"
import * as BlobStore from "../../shared/BlobStore.ts"
import * as Cfg from "../../shared/Config.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
import {
  ATTACHMENT_MAX_BYTES_LIMIT,
  contentTypeList,
  DEFAULT_ATTACHMENT_MAX_BYTES,
  DEFAULT_ATTACHMENT_TYPES,
} from "./Attachments.ts"
import { manifest } from "./module.ts"

/** Blog's configuration, read and validated once at start (every problem reported at once). */
export const loadConfig = Cfg.load({
  ...Cfg.base({ httpPort: manifest.ports.http }),
  ...Cfg.database(manifest.name),
  ...verifierConfig(manifests),
  /** authz's gRPC address (`host:port`): the permission checks of its routes and ownership rules. */
  authzGrpcUrl: Cfg.grpcAddress("authz", manifests),
  /** The platform's public URL: the Atom feed's id and links. */
  appBaseUrl: Config.URL("APP_BASE_URL").pipe(Config.withDefault(new URL(Cfg.localOrigin("gateway", manifests)))),
  /** The Atom feed's title. */
  feedTitle: Config.String("BLOG_FEED_TITLE").pipe(Config.withDefault("Blog")),
  /**
   * The Postgres text search configuration posts are indexed and searched with (`pg_ts_config`: english, german,
   * simple, ...). The name's shape is checked here; that the database has it, at start (Posts.layer).
   */
  searchLanguage: Config.schema(
    Schema.String.check(
      Schema.isPattern(/^[a-z_][a-z0-9_]{0,62}$/, { message: "Expected a text search configuration name (english)" }),
    ),
    "BLOG_SEARCH_LANGUAGE",
  ).pipe(Config.withDefault("english")),
  /** The content types an attachment may have (comma-separated `type/subtype`). */
  attachmentTypes: contentTypeList("BLOG_ATTACHMENT_TYPES").pipe(Config.withDefault(DEFAULT_ATTACHMENT_TYPES)),
  /** The largest attachment, in bytes. */
  attachmentMaxBytes: Cfg.intBetween("BLOG_ATTACHMENT_MAX_BYTES", 1, ATTACHMENT_MAX_BYTES_LIMIT).pipe(
    Config.withDefault(DEFAULT_ATTACHMENT_MAX_BYTES),
  ),
  /** Where attachments are stored: S3, or the embedded folder whose signed URLs blog serves. */
  ...BlobStore.config(),
})

/** Blog's validated configuration. */
export type BlogConfig = Effect.Success<typeof loadConfig>
