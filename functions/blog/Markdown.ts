import MarkdownIt from "markdown-it"
import sanitizeHtml from "sanitize-html"

// A post's body is Markdown as its author wrote it; readers get HTML. Two well-kept libraries, each doing what it is
// good at: markdown-it renders CommonMark (with `html: false` raw HTML in the Markdown is shown as text, and its own
// link check refuses javascript:, vbscript:, file: and most data: URLs), then sanitize-html keeps only an allow-list of
// elements, attributes and URL schemes. Either alone would be one mistake away from script in a reader's page.

const markdown = new MarkdownIt({ html: false, linkify: true, typographer: false })

const ALIGN = [/^(left|right|center)$/]

/** What survives in a post's HTML: elements Markdown produces, no script, style, frames, forms or event handlers. */
const policy: sanitizeHtml.IOptions = {
  allowedTags: [
    ...["p", "br", "hr", "blockquote", "pre", "code", "em", "strong", "s", "del", "sub", "sup"],
    ...["h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "a", "img"],
    ...["table", "thead", "tbody", "tr", "th", "td"],
  ],
  allowedAttributes: {
    a: ["href", "title", "rel"],
    img: ["src", "alt", "title"],
    ol: ["start"],
    code: ["class"],
    th: ["style"],
    td: ["style"],
  },
  // Only a code block's language (markdown-it's `language-x`) and a table column's alignment.
  allowedClasses: { code: ["language-*"] },
  allowedStyles: { th: { "text-align": ALIGN }, td: { "text-align": ALIGN } },
  // Links may be web or mail addresses (or relative); images web addresses only: no data:, javascript: or other scheme.
  allowedSchemes: ["http", "https", "mailto"],
  allowedSchemesByTag: { img: ["http", "https"] },
  allowedSchemesAppliedToAttributes: ["href", "src"],
  allowProtocolRelative: false,
  // Elements whose text must not survive as text either.
  nonTextTags: ["script", "style", "textarea", "option", "noscript", "title", "iframe", "object", "embed", "svg"],
  // Links in user content: no referrer leak, no window.opener, no ranking passed on.
  transformTags: {
    a: (tagName, attribs) => ({ tagName, attribs: { ...attribs, rel: "nofollow ugc noopener noreferrer" } }),
  },
}

/** A post body's HTML: the Markdown rendered, then sanitised to the allow-list (what readers get, stored on write). */
export const render = (body: string): string => sanitize(markdown.render(body))

/** HTML reduced to the allow-list of `render`. */
export const sanitize = (html: string): string => sanitizeHtml(html, policy)
