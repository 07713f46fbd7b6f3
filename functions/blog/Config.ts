import { Config, type Effect, Schema } from "effect"
import * as Cfg from "../../shared/Config.ts"
import { verifierConfig } from "../auth/TokenVerification.ts"
import { manifests } from "../registry.ts"
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
})

/** Blog's validated configuration. */
export type BlogConfig = Effect.Success<typeof loadConfig>
