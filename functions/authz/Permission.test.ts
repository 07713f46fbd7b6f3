import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { covers, isGrant, matchingGrant, normalize } from "./Permission.ts"
import { PermissionRegistry } from "./PermissionRegistry.ts"
import { blogManifest } from "./testing/authzHarness.ts"

describe("grants and wildcards", () => {
  it("a trailing wildcard covers whole segments only", () => {
    expect(covers("blog.*", "blog.post.create")).toBe(true)
    expect(covers("blog.post.*", "blog.post.create")).toBe(true)
    expect(covers("blog.*", "blogx.a")).toBe(false)
    expect(covers("blog.*", "blog")).toBe(false)
    expect(covers("blog.post.*", "blog.comment.moderate")).toBe(false)
    expect(covers("blog.post.create", "blog.post.create")).toBe(true)
    expect(covers("blog.post.create", "blog.post.createx")).toBe(false)
  })

  it("* covers every permission", () => {
    for (const p of ["blog.post.create", "identity.user.read", "a", "x.y.z.w"]) expect(covers("*", p)).toBe(true)
  })

  it("matchingGrant names the first grant that covers the permission", () => {
    expect(matchingGrant(["audit.event.read", "blog.*"], "blog.post.delete")).toBe("blog.*")
    expect(matchingGrant(["audit.event.read"], "blog.post.delete")).toBeUndefined()
  })

  it("only permissions, trailing wildcards and * are grants", () => {
    for (const g of ["*", "blog.*", "blog.post.*", "blog.post.create", "a1.b2"]) expect(isGrant(g)).toBe(true)
    for (const g of ["", "Blog.post", "blog..post", "blog.*.create", "*.post", "blog.", ".blog", "blog.**", "blog *"]) {
      expect(isGrant(g), g).toBe(false)
    }
  })

  it("normalize sorts and removes duplicates", () => {
    expect(normalize(["b.c", "a.b", "b.c", "*"])).toEqual(["*", "a.b", "b.c"])
  })
})

describe("PermissionRegistry", () => {
  const registry = Effect.runSync(
    Effect.service(PermissionRegistry).pipe(Effect.provide(PermissionRegistry.fromManifests([blogManifest]))),
  )

  it("lists the manifests' permissions sorted by name, with their module", () => {
    expect(registry.all.map((p) => p.name)).toEqual(["blog.comment.moderate", "blog.post.create", "blog.post.delete"])
    expect(registry.all[0]).toEqual({ name: "blog.comment.moderate", description: "Moderate comments", module: "blog" })
  })

  it("a grant is known when it covers a defined permission", () => {
    expect(registry.unknown(["*", "blog.*", "blog.post.*", "blog.post.create"])).toEqual([])
    expect(registry.unknown(["blogx.*", "blog.post.publish", "blog.page.*", "blog.post.create"])).toEqual([
      "blogx.*",
      "blog.post.publish",
      "blog.page.*",
    ])
  })
})
