import { XMLParser, XMLValidator } from "fast-xml-parser"
import { describe, expect, it } from "vitest"
import { atom } from "./Feed.ts"
import type { Post } from "./Post.ts"

const post = (overrides: Partial<Post>): Post => ({
  id: "0b9f1c1e-4c59-4c6a-9d4c-1f0e8d7a6b5c",
  slug: "a-post",
  title: "A post",
  excerpt: "",
  body: "body",
  html: "<p>body</p>\n",
  status: "published",
  publishAt: null,
  publishedAt: "2030-01-02T03:04:05.678Z",
  authorId: "5d0c2b6e-1a8f-4f63-b8f0-2f7c9c1e3d4a",
  tags: [],
  attachments: [],
  version: 2,
  createdAt: "2030-01-01T00:00:00.000Z",
  updatedAt: "2030-01-02T03:04:05.678Z",
  ...overrides,
})

const parse = (xml: string) =>
  new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@_", isArray: (name) => name === "entry" }).parse(xml)

// RFC 4287 §4.1.1 and §4.1.2: what a feed and each entry must carry (a feed validator checks the same).
const expectValidAtom = (xml: string) => {
  expect(XMLValidator.validate(xml)).toBe(true)
  const { feed } = parse(xml)
  expect(feed["@_xmlns"]).toBe("http://www.w3.org/2005/Atom")
  for (const element of ["id", "title", "updated", "link"]) expect(feed[element], element).toBeDefined()
  expect(feed.link["@_rel"]).toBe("self")
  expect(Date.parse(feed.updated)).not.toBeNaN()
  for (const entry of feed.entry ?? []) {
    for (const element of ["id", "title", "updated", "link", "author"]) expect(entry[element], element).toBeDefined()
    expect(entry.author.name).toBeDefined()
    expect(entry.content ?? entry.summary).toBeDefined()
    expect(Date.parse(entry.updated)).not.toBeNaN()
  }
  return feed
}

describe("Atom feed", () => {
  it("has what RFC 4287 requires of a feed and of each entry", () => {
    const feed = expectValidAtom(
      atom({
        baseUrl: "https://example.com/",
        title: "Our blog",
        posts: [
          post({ excerpt: "short", tags: ["news", "typescript"] }),
          post({ id: "1b9f1c1e-4c59-4c6a-9d4c-1f0e8d7a6b5d", slug: "older", updatedAt: "2029-01-01T00:00:00.000Z" }),
        ],
      }),
    )
    expect(feed.id).toBe("https://example.com/api/v1/blog/feed.xml")
    expect(feed.link["@_href"]).toBe("https://example.com/api/v1/blog/feed.xml")
    expect(feed.updated).toBe("2030-01-02T03:04:05.678Z")
    expect(feed.entry).toHaveLength(2)
    const [first] = feed.entry
    expect(first.id).toBe("urn:uuid:0b9f1c1e-4c59-4c6a-9d4c-1f0e8d7a6b5c")
    expect(first.link["@_href"]).toBe("https://example.com/api/v1/blog/posts/a-post")
    expect(first.summary["#text"]).toBe("short")
    expect(first.content["@_type"]).toBe("html")
    expect(first.content["#text"]).toBe("<p>body</p>")
    expect(first.category.map((c: { "@_term": string }) => c["@_term"])).toEqual(["news", "typescript"])
  })

  it("escapes markup and drops what XML cannot carry", () => {
    const xml = atom({
      baseUrl: "https://example.com",
      title: 'Tom & Jerry\'s <"blog">',
      posts: [
        post({
          title: "</title><script>alert(1)</script> & more\u0001\uFFFE",
          excerpt: "]]> <![CDATA[ x",
          html: '<p>a &amp; b</p><a href="https://x.example/?a=1&b=2">x</a>',
        }),
      ],
    })
    expect(xml).not.toContain("<script>")
    const feed = expectValidAtom(xml)
    // The parser reads back exactly what was written, less what XML cannot carry.
    expect(feed.title["#text"]).toBe('Tom & Jerry\'s <"blog">')
    const [entry] = feed.entry
    expect(entry.title["#text"]).toBe("</title><script>alert(1)</script> & more")
    expect(entry.summary["#text"]).toBe("]]> <![CDATA[ x")
    expect(entry.content["#text"]).toBe('<p>a &amp; b</p><a href="https://x.example/?a=1&b=2">x</a>')
  })

  it("is a valid feed with no posts", () => {
    const feed = expectValidAtom(atom({ baseUrl: "https://example.com", title: "Empty", posts: [] }))
    expect(feed.entry).toBeUndefined()
    expect(feed.updated).toBe("1970-01-01T00:00:00.000Z")
  })
})
