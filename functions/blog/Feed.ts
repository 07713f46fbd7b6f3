import { Context } from "effect"
import { XMLBuilder } from "fast-xml-parser"
import type { Post } from "./Post.ts"

// The Atom feed (RFC 4287) of the latest published posts, built with fast-xml-parser's XMLBuilder, which escapes every
// text and attribute value. What XML 1.0 cannot carry at all (control characters, lone surrogates, U+FFFE/U+FFFF) is
// removed first: escaping cannot make those valid.

/** What the feed says of the platform: its public URL (`APP_BASE_URL`) and the feed's title (`BLOG_FEED_TITLE`). */
export class FeedSettings extends Context.Service<FeedSettings, { readonly baseUrl: string; readonly title: string }>()(
  "blog/FeedSettings",
) {}

/** How many posts the feed carries. */
export const FEED_SIZE = 20

/** The feed's media type. */
export const ATOM = "application/atom+xml; charset=utf-8"

/** Where the feed and a post are, under the platform's public URL. */
export const feedPath = "/api/v1/blog/feed.xml"
export const postPath = (slug: string) => `/api/v1/blog/posts/${slug}`

// Characters outside XML 1.0's Char production.
// biome-ignore lint/suspicious/noControlCharactersInRegex: naming the control characters XML allows is the point
const NOT_XML = /[^\u0009\u000A\u000D\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu
const text = (value: string) => value.replace(NOT_XML, "")

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  textNodeName: "#text",
  processEntities: true,
  suppressEmptyNode: true,
  format: false,
})

/** The Atom document of `posts` (newest first), for a platform served at `baseUrl`. */
export const atom = (options: {
  readonly baseUrl: string
  readonly title: string
  readonly posts: ReadonlyArray<Post>
}) => {
  const base = options.baseUrl.replace(/\/$/, "")
  const self = `${base}${feedPath}`
  // The feed changed when its most recently changed entry did; an empty feed never did.
  const updated =
    options.posts
      .map((post) => post.updatedAt)
      .sort()
      .at(-1) ?? "1970-01-01T00:00:00.000Z"
  const feed = {
    feed: {
      "@_xmlns": "http://www.w3.org/2005/Atom",
      id: self,
      title: { "@_type": "text", "#text": text(options.title) },
      updated,
      link: { "@_rel": "self", "@_type": "application/atom+xml", "@_href": self },
      generator: "platform blog",
      entry: options.posts.map((post) => ({
        // The post's id, not its slug or URL: an entry keeps its identity when its slug changes.
        id: `urn:uuid:${post.id}`,
        title: { "@_type": "text", "#text": text(post.title) },
        updated: post.updatedAt,
        ...(post.publishedAt === null ? {} : { published: post.publishedAt }),
        link: { "@_rel": "alternate", "@_type": "application/json", "@_href": `${base}${postPath(post.slug)}` },
        // Blog knows its authors by id (names are identity's).
        author: { name: post.authorId },
        category: post.tags.map((tag) => ({ "@_term": tag })),
        ...(post.excerpt.trim() === "" ? {} : { summary: { "@_type": "text", "#text": text(post.excerpt) } }),
        content: { "@_type": "html", "#text": text(post.html) },
      })),
    },
  }
  return `<?xml version="1.0" encoding="utf-8"?>\n${builder.build(feed)}`
}
