import { describe, expect, it } from "vitest"
import { FALLBACK_SLUG, MAX_SLUG, SLUG, slugOf, withSuffix } from "./Slugs.ts"

describe("slugs", () => {
  it.each([
    ["Hello, World!", "hello-world"],
    ["Héllo Wörld — Ça va?", "hello-woerld-ca-va"],
    ["Привет, мир", "privet-mir"],
    ["Ærø & Straße", "aero-and-strasse"],
    ["  --Spaces   and---dashes--  ", "spaces-and-dashes"],
    ["TypeScript 7 is here", "typescript-7-is-here"],
    ["日本語のタイトル", FALLBACK_SLUG],
    ["🎉🎉", FALLBACK_SLUG],
    ["0B9F1C1E-4C59-4C6A-9D4C-1F0E8D7A6B5C", "post-0b9f1c1e-4c59-4c6a-9d4c-1f0e8d7a6b5c"],
  ])("folds %j to ASCII: %s", (title, slug) => {
    expect(slugOf(title)).toBe(slug)
    expect(slugOf(title)).toMatch(SLUG)
  })

  it("cuts a long title at a word boundary, leaving room for a -N suffix within 120 characters", () => {
    const title = Array.from({ length: 60 }, (_, i) => `word${i}`).join(" ")
    const slug = slugOf(title)
    expect(slug.length).toBeLessThanOrEqual(MAX_SLUG - 10)
    expect(slug).toMatch(SLUG)
    expect(title.toLowerCase().replaceAll(" ", "-").startsWith(`${slug}-`)).toBe(true)
    expect(withSuffix(slug, 999_999_998).length).toBeLessThanOrEqual(MAX_SLUG)
    // One endless word is cut inside it.
    expect(slugOf("a".repeat(500))).toBe("a".repeat(MAX_SLUG - 10))
  })

  it("suffixes the next number after the highest taken", () => {
    expect(withSuffix("post", 0)).toBe("post")
    expect(withSuffix("post", 1)).toBe("post-2")
    expect(withSuffix("post", 7)).toBe("post-8")
  })
})
