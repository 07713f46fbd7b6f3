import { Schema } from "effect"
import { DateTime } from "../../shared/DateTime.ts"
import { MAX_SLUG, SLUG } from "./Slugs.ts"

// A post as the API shows it and the rules of what a writer may send. Each limit is said here once: the contract
// validates with it (a 400 naming the field), the repository trusts it.

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

// Control characters other than tab and line breaks have no place in text (and NUL cannot be stored in Postgres).
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/u
const noControl = Schema.makeFilter((s: string) => !CONTROL.test(s), {
  message: "must not contain control characters",
})

/** A post's id (a UUID). */
export const PostId = Schema.String.check(Schema.isPattern(UUID, { message: "must be a UUID" }))

/**
 * A slug: lowercase `[a-z0-9]` words joined by single hyphens, at most 120 characters, and not shaped like a post id
 * (`GET /posts/{id}` reads such a string as an id, anything else as a slug).
 */
export const Slug = Schema.String.check(
  Schema.isMaxLength(MAX_SLUG, { message: `must be at most ${MAX_SLUG} characters` }),
  Schema.isPattern(SLUG, { message: "must be lowercase letters and digits in words joined by single hyphens" }),
  Schema.makeFilter((s: string) => !UUID.test(s), { message: "must not look like a post id (a UUID)" }),
)

/** How a reader names a post: its id or its slug. */
export const IdOrSlug = Schema.String.check(
  Schema.isMaxLength(MAX_SLUG, { message: `must be a post id or a slug of at most ${MAX_SLUG} characters` }),
  Schema.makeFilter((s: string) => UUID.test(s) || SLUG.test(s), { message: "must be a post id or a slug" }),
)

/** The longest title, excerpt, body (in characters), tag, and the most tags a post has. */
export const LIMITS = { title: 200, excerpt: 500, body: 100_000, tag: 40, tags: 10 } as const

/** A title: 1–200 characters, not blank. */
export const Title = Schema.String.check(
  Schema.isMaxCodePoints(LIMITS.title, { message: `must be at most ${LIMITS.title} characters` }),
  Schema.makeFilter((s: string) => s.trim().length > 0, { message: "must not be blank" }),
  noControl,
)

/** A short summary shown in lists and the feed; may be empty. */
export const Excerpt = Schema.String.check(
  Schema.isMaxCodePoints(LIMITS.excerpt, { message: `must be at most ${LIMITS.excerpt} characters` }),
  noControl,
)

/** The Markdown body, stored as written. */
export const Body = Schema.String.check(
  Schema.isMaxCodePoints(LIMITS.body, { message: `must be at most ${LIMITS.body} characters` }),
  noControl,
)

/** A tag: lowercase `[a-z0-9]` words joined by hyphens, at most 40 characters (so `TypeScript` and `typescript` are one tag). */
export const Tag = Schema.String.check(
  Schema.isMaxLength(LIMITS.tag, { message: `must be at most ${LIMITS.tag} characters` }),
  Schema.isPattern(SLUG, { message: "must be lowercase letters and digits in words joined by single hyphens" }),
)

/** A post's tags: at most 10, each once. */
export const Tags = Schema.Array(Tag).check(
  Schema.isMaxLength(LIMITS.tags, { message: `must be at most ${LIMITS.tags} tags` }),
  Schema.makeFilter((tags: ReadonlyArray<string>) => new Set(tags).size === tags.length, {
    message: "must not repeat a tag",
  }),
)

/** Where a post is in its life. */
export const Status = Schema.Literals(["draft", "scheduled", "published", "archived"])
export type Status = typeof Status.Type

/** An attachment of a post (uploaded straight to storage; see Attachments.ts). */
export const Attachment = Schema.Struct({
  id: Schema.String,
  filename: Schema.String,
  contentType: Schema.String,
  size: Schema.Int,
  status: Schema.Literals(["pending", "ready"]),
  url: Schema.NullOr(Schema.String),
})
export type Attachment = typeof Attachment.Type

/** A post as the API shows it. */
export const Post = Schema.Struct({
  id: Schema.String,
  slug: Schema.String,
  title: Schema.String,
  excerpt: Schema.String,
  /** The Markdown as written. */
  body: Schema.String,
  /** The body rendered and sanitised (no script, event handlers or javascript: URLs). */
  html: Schema.String,
  status: Status,
  publishAt: Schema.NullOr(Schema.String),
  publishedAt: Schema.NullOr(Schema.String),
  authorId: Schema.String,
  tags: Schema.Array(Schema.String),
  attachments: Schema.Array(Attachment),
  version: Schema.Int,
  createdAt: Schema.String,
  updatedAt: Schema.String,
})
export type Post = typeof Post.Type

/** What a writer sends to create a post (a draft): the slug comes from the title unless given. */
export const NewPost = Schema.Struct({
  title: Title,
  slug: Schema.optional(Slug),
  excerpt: Schema.optional(Excerpt),
  body: Schema.optional(Body),
  tags: Schema.optional(Tags),
})
export type NewPost = typeof NewPost.Type

/** What a writer may change; `tags` replaces the list, a `slug` given here is kept even once published. */
export const PostChanges = Schema.Struct({
  title: Schema.optional(Title),
  slug: Schema.optional(Slug),
  excerpt: Schema.optional(Excerpt),
  body: Schema.optional(Body),
  tags: Schema.optional(Tags),
})
export type PostChanges = typeof PostChanges.Type

/** A publication: at `publishAt` when it is in the future (the post is `scheduled`), otherwise now. */
export const Publication = Schema.Struct({ publishAt: Schema.optional(DateTime) })
export type Publication = typeof Publication.Type
