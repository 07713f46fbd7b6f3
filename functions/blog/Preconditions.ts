import { Effect } from "effect"
import { ValidationFailed } from "../../shared/Problem.ts"

// Conditional requests on a resource with a `version` (API.md, common to the feature services; RFC 9110 §13): its
// strong ETag is `"<version>"`; `If-Match` on a write must name the current version (or be `*`), else 412; `If-None-Match`
// on a read naming the current version is a 304.

/** The strong ETag of a version. */
export const etagOf = (version: number): string => `"${version}"`

/** What an `If-Match` or `If-None-Match` header asks for: any current representation, or one of these entity tags. */
export type Condition = { readonly any: true } | { readonly tags: ReadonlyArray<{ weak: boolean; opaque: string }> }

const TAG = /^\s*(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)/

/** Reads a conditional header: none when absent, a 400 naming the header when it is not `*` or a list of entity tags. */
export const parseCondition = (
  name: "if-match" | "if-none-match",
  value: string | undefined,
): Effect.Effect<Condition | undefined, ValidationFailed> => {
  if (value === undefined) return Effect.succeed(undefined)
  if (value.trim() === "*") return Effect.succeed({ any: true })
  const tags: Array<{ weak: boolean; opaque: string }> = []
  let rest = value
  while (rest.trim() !== "") {
    const match = TAG.exec(rest)
    if (match === null) {
      return Effect.fail(
        new ValidationFailed({
          detail: `The ${name} header must be * or a list of entity tags ("3")`,
          errors: [{ path: `headers.${name}`, message: 'Expected * or entity tags such as "3"' }],
        }),
      )
    }
    tags.push({ weak: match[1] !== undefined, opaque: match[2]! })
    rest = rest.slice(match[0].length)
  }
  return Effect.succeed({ tags })
}

/** `If-Match` holds for a resource at `version`: strong comparison (a weak tag never matches). */
export const matches = (condition: Condition, version: number): boolean =>
  "any" in condition || condition.tags.some((tag) => !tag.weak && tag.opaque === String(version))

/** `If-None-Match` fails (a 304 for a read) for a resource at `version`: weak comparison. */
export const noneMatchFails = (condition: Condition, version: number): boolean =>
  "any" in condition || condition.tags.some((tag) => tag.opaque === String(version))
