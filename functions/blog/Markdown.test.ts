import { parseDocument } from "htmlparser2"
import { describe, expect, it } from "vitest"
import { render, sanitize } from "./Markdown.ts"

// Known XSS payloads, as an author could put them in a post's Markdown: none may survive into the HTML readers get.
// The HTML is parsed (as a browser would) and every element, attribute and URL is checked, not the text searched.
const payloads: ReadonlyArray<readonly [string, string]> = [
  ["javascript: link", "[click](javascript:alert(1))"],
  ["javascript: link, mixed case and spaces", "[click]( JaVaScRiPt:alert(1))"],
  ["javascript: link with a tab inside the scheme", "[click](java\tscript:alert(1))"],
  ["entity-encoded javascript:", "[click](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1))"],
  ["hex-entity javascript:", "[click](&#x6A;avascript&#x3A;alert(1))"],
  ["percent-encoded javascript:", "[click](%6Aavascript:alert(1))"],
  ["vbscript: link", "[click](vbscript:msgbox(1))"],
  ["reference-style javascript: link", "[click][x]\n\n[x]: javascript:alert(1)"],
  ["javascript: autolink", "<javascript:alert(1)>"],
  ["data: autolink", "<data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==>"],
  ["data: link", "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"],
  ["data: image", "![x](data:image/png;base64,iVBORw0KGgo=)"],
  ["data: SVG image", "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)"],
  ["javascript: image", "![x](javascript:alert(1))"],
  ["raw script", "<script>alert(1)</script>"],
  ["raw script in a paragraph", "hello <script>alert(1)</script> world"],
  ["img onerror", '<img src="x" onerror="alert(1)">'],
  ["svg onload", "<svg onload=alert(1)><circle r=1 /></svg>"],
  ["svg script", "<svg><script>alert(1)</script></svg>"],
  ["iframe srcdoc", '<iframe srcdoc="<script>alert(1)</script>"></iframe>'],
  ["object data", '<object data="javascript:alert(1)"></object>'],
  ["style expression", '<div style="background:url(javascript:alert(1))">x</div>'],
  ["style element", "<style>body{background:url(javascript:alert(1))}</style>"],
  ["a href in raw HTML", '<a href="javascript:alert(1)">x</a>'],
  ["form action", '<form action="javascript:alert(1)"><button>x</button></form>'],
  ["meta refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'],
  ["link title breakout", '[x](https://example.com "a\\" onmouseover=\\"alert(1)")'],
  ["image alt breakout", '![a" onerror="alert(1)](https://example.com/a.png)'],
  ["HTML in a code span", "`<script>alert(1)</script>`"],
  ["HTML in a fenced block", '```html\n<img src=x onerror="alert(1)">\n```'],
  ["fence info breakout", '```js" onmouseover="alert(1)\ncode\n```'],
  ["linkified javascript:", "javascript:alert(1)"],
  ["protocol-relative link", "[x](//evil.example/x.js)"],
  ["file: link", "[x](file:///etc/passwd)"],
  ["math/mathml", '<math><mtext><a href="javascript:alert(1)">x</a></mtext></math>'],
  ["comment breakout", "<!--><img src=x onerror=alert(1)>-->"],
  ["unclosed tag", "<img src=x onerror=alert(1)//"],
  ["base tag", '<base href="javascript:alert(1)//">'],
]

// The scheme a browser resolves a URL to (WHATWG URL parsing, relative to a page of the blog).
const schemeOf = (url: string) => new URL(url, "https://blog.example/posts/a").protocol

interface Node {
  readonly type: string
  readonly name?: string
  readonly attribs?: Record<string, string>
  readonly children?: ReadonlyArray<Node>
}

// Every element of the rendered HTML with its attributes.
const elements = (html: string): Array<{ name: string; attribs: Record<string, string> }> => {
  const found: Array<{ name: string; attribs: Record<string, string> }> = []
  const walk = (node: Node) => {
    if (node.type === "tag" || node.type === "script" || node.type === "style") {
      found.push({ name: node.name ?? "", attribs: node.attribs ?? {} })
    }
    for (const child of node.children ?? []) walk(child)
  }
  walk(parseDocument(html) as unknown as Node)
  return found
}

const ALLOWED = new Set(
  "p br hr blockquote pre code em strong s del sub sup h1 h2 h3 h4 h5 h6 ul ol li a img table thead tbody tr th td".split(
    " ",
  ),
)

// Only allowed elements, no event handler, no style but a column's alignment, every URL web or mail.
const expectHarmless = (html: string) => {
  for (const element of elements(html)) {
    expect(ALLOWED.has(element.name), `element <${element.name}> in ${html}`).toBe(true)
    for (const [attribute, value] of Object.entries(element.attribs)) {
      expect(attribute.startsWith("on"), `attribute ${attribute} in ${html}`).toBe(false)
      if (attribute === "href" || attribute === "src") {
        expect(["http:", "https:", "mailto:"], `URL in ${html}`).toContain(schemeOf(value))
        expect(value.startsWith("//"), `protocol-relative URL in ${html}`).toBe(false)
      }
      if (attribute === "style") expect(value).toMatch(/^text-align:(left|right|center);?$/)
    }
  }
}

describe("Markdown rendering", () => {
  it.each(payloads)("neutralises %s", (_name, payload) => expectHarmless(render(payload)))

  // The second line of defence alone: were markdown-it ever to let HTML through, the sanitiser still holds.
  it.each(payloads.filter(([, payload]) => payload.startsWith("<")))("sanitises raw HTML alone: %s", (_name, payload) =>
    expectHarmless(sanitize(payload)),
  )

  it("keeps what Markdown is for: headings, emphasis, lists, links, images, tables and code", () => {
    const html = render(
      [
        "# Title",
        "Some *emphasis*, **strong** and `code`.",
        "- one\n- two",
        "3. three",
        "[a link](https://example.com/a?b=c) and <https://example.org> and mail <ada@example.com>",
        '![a picture](https://example.com/p.png "its title")',
        "| left | right |\n|:--|--:|\n| 1 | 2 |",
        "```ts\nconst x = 1 < 2\n```",
        "> quoted",
      ].join("\n\n"),
    )
    expect(html).toContain("<h1>Title</h1>")
    expect(html).toContain("<em>emphasis</em>")
    expect(html).toContain("<strong>strong</strong>")
    expect(html).toContain("<code>code</code>")
    expect(html).toContain("<li>one</li>")
    expect(html).toContain('<ol start="3">')
    expect(html).toContain('<a href="https://example.com/a?b=c" rel="nofollow ugc noopener noreferrer">a link</a>')
    expect(html).toContain('href="https://example.org"')
    expect(html).toContain('href="mailto:ada@example.com"')
    expect(html).toContain('<img src="https://example.com/p.png" alt="a picture" title="its title" />')
    expect(html).toContain('<th style="text-align:right">right</th>')
    expect(html).toContain('<code class="language-ts">const x = 1 &lt; 2\n</code>')
    expect(html).toContain("<blockquote>")
  })

  it("shows raw HTML in the Markdown as text", () => {
    expect(render("a <b>bold</b> claim")).toBe("<p>a &lt;b&gt;bold&lt;/b&gt; claim</p>\n")
  })
})
