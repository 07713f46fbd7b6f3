import { kernelMigrations } from "../../shared/KernelMigrations.ts"
import { defineModule } from "../../shared/Module.ts"
import { sessionRevoked } from "../auth/TokenVerification.ts"
import { permissionChanges } from "../authz/PermissionChanges.ts"
import { migrations } from "./migrations/index.ts"

/** Blog: posts (Markdown, scheduled publishing, full-text search, an Atom feed) and their attachments. */
export const manifest = defineModule({
  name: "blog",
  version: "0.1.0",
  description: "Posts in Markdown with scheduled publishing, full-text search and an Atom feed; their attachments",
  ports: { http: 8091 },
  // authz answers the permission checks of its routes and of its ownership rules.
  dependsOn: ["authz"],
  permissions: [
    { name: "blog.post.create", description: "Write posts and change or delete one's own" },
    { name: "blog.post.publish", description: "Publish, schedule and unpublish one's own posts" },
    { name: "blog.post.read.any", description: "Read anyone's unpublished posts" },
    { name: "blog.post.update.any", description: "Change anyone's posts" },
    { name: "blog.post.publish.any", description: "Publish, schedule and unpublish anyone's posts" },
    { name: "blog.post.delete.any", description: "Delete anyone's posts" },
  ],
  events: {
    publishes: [
      "blog.post.created",
      "blog.post.updated",
      "blog.post.published",
      "blog.post.unpublished",
      "blog.post.deleted",
    ],
    // Revoked sessions (as every verifier of access tokens) and authz's changes (its permission cache).
    consumes: [sessionRevoked.type, ...permissionChanges.types],
  },
  migrations: [...kernelMigrations, ...migrations],
  // What the operator must provide on every target; BLOG_FEED_TITLE and BLOG_SEARCH_LANGUAGE have defaults (Config.ts),
  // as identity's retention keys do, and are set only where they should differ.
  settings: [
    { key: "APP_BASE_URL", description: "the public URL of the platform (the Atom feed's links)" },
    {
      key: "S3_BUCKET",
      description:
        "the bucket of post attachments (its region from AWS_REGION or S3_REGION, credentials from the pod's or task's role, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    },
  ],
})
