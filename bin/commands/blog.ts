// `platform blog`: list posts (yours in any status, or everyone's published), publish one (now or at a time) and
// unpublish it. A write names the version it was based on (If-Match): a post changed meanwhile is refused (412),
// never overwritten.
import { ok, type PlatformClient } from "@platform/client"
import { type Command, Option } from "commander"
import { action, type Context } from "../context.ts"
import { when } from "../output.ts"
import { listPages, type PageOptions, withPageOptions } from "../pages.ts"
import { futureTime } from "../parse.ts"

type Post = {
  readonly id: string
  readonly slug: string
  readonly title: string
  readonly status: string
  readonly publishAt: string | null
  readonly publishedAt: string | null
  readonly version: number
}

const STATUSES = ["draft", "scheduled", "published", "archived"] as const

const postsTable = (ctx: Context, posts: ReadonlyArray<Post>) =>
  ctx.out.table(
    ["id", "slug", "title", "status", "publish at", "published", "version"],
    posts.map((p) => [p.id, p.slug, p.title, p.status, when(p.publishAt), when(p.publishedAt), p.version]),
  )

/** The post `idOrSlug` names, as it is now (its id and version for the write that follows). */
const current = (api: PlatformClient, idOrSlug: string) =>
  ok(api.GET("/api/v1/blog/posts/{id}", { params: { path: { id: idOrSlug } } }))

const changed = (ctx: Context, post: Post) => {
  if (ctx.out.json) ctx.out.printJson(post)
  else
    ctx.out.line(
      post.status === "scheduled"
        ? `Scheduled "${post.title}" (${post.id}) for ${when(post.publishAt)}.`
        : `"${post.title}" (${post.id}) is now ${post.status}.`,
    )
}

export const blogCommands = (program: Command) => {
  const blog = program.command("blog").description("Blog posts: list, publish, unpublish")

  withPageOptions(
    blog
      .command("list")
      .description("List your posts in any status (or, with --published, everyone's published posts)"),
  )
    .addOption(
      new Option("--status <status>", "only your posts in this status").choices(STATUSES).conflicts("published"),
    )
    .option("--published", "everyone's published posts, newest first")
    .action(
      action<PageOptions & { status?: (typeof STATUSES)[number]; published?: boolean }>(async (ctx, _args, options) => {
        const api = await ctx.api()
        const status = options.status === undefined ? {} : { status: options.status }
        const page = await listPages(ctx, "posts", options, (query) =>
          options.published === true
            ? ok(api.GET("/api/v1/blog/posts", { params: { query } }))
            : ok(api.GET("/api/v1/blog/me/posts", { params: { query: { ...query, ...status } } })),
        )
        if (ctx.out.json) ctx.out.printJson(page)
        else postsTable(ctx, page.items)
      }),
    )

  blog
    .command("publish")
    .description("Publish a post now, or schedule it with --at")
    .argument("<post>", "the post's id or slug")
    .option("--at <time>", "publish at this time instead (RFC 3339, or a duration from now such as 2h, 1d)", futureTime)
    .action(
      action<{ at?: string }>(async (ctx, [idOrSlug], options) => {
        const api = await ctx.api()
        const post = await current(api, idOrSlug!)
        const published = await ok(
          api.POST("/api/v1/blog/posts/{id}/publish", {
            params: { path: { id: post.id }, header: { "if-match": `"${post.version}"` } },
            body: options.at === undefined ? {} : { publishAt: options.at },
          }),
        )
        changed(ctx, published)
      }),
    )

  blog
    .command("unpublish")
    .description("Take a post back to draft")
    .argument("<post>", "the post's id or slug")
    .action(
      action(async (ctx, [idOrSlug]) => {
        const api = await ctx.api()
        const post = await current(api, idOrSlug!)
        changed(
          ctx,
          await ok(
            api.POST("/api/v1/blog/posts/{id}/unpublish", {
              params: { path: { id: post.id }, header: { "if-match": `"${post.version}"` } },
            }),
          ),
        )
      }),
    )
}
