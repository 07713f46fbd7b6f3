import slugify from "@sindresorhus/slugify"

/** A slug: lowercase ASCII letters and digits in hyphen-separated words, at most `MAX_SLUG` characters. */
export const SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/

/** The longest slug (API.md). */
export const MAX_SLUG = 120

const ID_SHAPED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Room a derived slug leaves for the `-N` that makes it unique (`-999999999`). */
const SUFFIX_ROOM = 10

/** The slug of a title with nothing else to go on (one that folds to no ASCII letter or digit, e.g. in CJK script). */
export const FALLBACK_SLUG = "post"

/**
 * The slug a title gives: Unicode folded to ASCII (ü → ue, ø → o, Ж → zh, & → and) by @sindresorhus/slugify, lowercase
 * `[a-z0-9-]`, cut at a word boundary to leave room for a `-N` suffix; `post` when nothing is left, `post-` before one
 * that would look like a post id.
 */
export const slugOf = (title: string): string => {
  const folded = slugify(title, { decamelize: false })
  // A slug shaped like a post id would be read as one (`GET /posts/{id}` takes an id or a slug).
  const full = ID_SHAPED.test(folded) ? `${FALLBACK_SLUG}-${folded}` : folded
  const room = MAX_SLUG - SUFFIX_ROOM
  if (full.length <= room) return full === "" ? FALLBACK_SLUG : full
  const cut = full.slice(0, room)
  // Cut inside a word: drop its part, unless the first word alone is longer than the room.
  const boundary = full[room] === "-" ? cut : cut.slice(0, Math.max(cut.lastIndexOf("-"), 0)) || cut
  return boundary.replace(/-+$/, "")
}

/** `base`, or `base-N` with the next N after the highest taken (`taken`: the highest suffix in use, 1 for `base` itself). */
export const withSuffix = (base: string, taken: number): string => (taken === 0 ? base : `${base}-${taken + 1}`)
