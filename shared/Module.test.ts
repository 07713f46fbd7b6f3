import { describe, expect, it } from "vitest"
import { type ModuleManifest, validate } from "./Module.ts"

const manifest = (overrides: Partial<ModuleManifest>): ModuleManifest => ({
  name: "blog",
  version: "1.0.0",
  description: "test",
  ports: { http: 1 },
  dependsOn: [],
  routes: [],
  permissions: [{ name: "blog.post.create", description: "create posts" }],
  events: { publishes: [], consumes: [] },
  jobs: [],
  migrations: [],
  ...overrides,
})

describe("Module manifests", () => {
  it("accepts a consistent manifest", () => {
    const routes = [{ method: "POST", path: "/api/v1/blog/posts", auth: { permission: "blog.post.create" } }] as const
    expect(validate(manifest({ routes }))).toEqual([])
  })

  it("refuses a route needing an undefined permission of its own module, or a malformed one", () => {
    const problems = validate(
      manifest({
        routes: [
          { method: "POST", path: "/api/v1/blog/posts", auth: { permission: "blog.post.craete" } },
          { method: "GET", path: "/api/v1/blog/posts", auth: { permission: "Blog Post" } },
        ],
      }),
    )
    expect(problems).toHaveLength(2)
    expect(problems[0]).toMatch(/blog.post.craete, which this module does not define/)
    expect(problems[1]).toMatch(/malformed permission/)
  })

  it("refuses duplicate routes, foreign permission names and bad event types", () => {
    const route = { method: "GET", path: "/x", auth: "public" } as const
    const problems = validate(
      manifest({
        routes: [route, route],
        permissions: [{ name: "billing.invoice.read", description: "not ours" }],
        events: { publishes: ["created"], consumes: [] },
      }),
    )
    expect(problems.join("\n")).toMatch(/declared twice/)
    expect(problems.join("\n")).toMatch(/must start with "blog."/)
    expect(problems.join("\n")).toMatch(/event type "created"/)
  })

  it("refuses a route timeout or rate limit that is not a sensible whole number", () => {
    const problems = validate(
      manifest({
        routes: [
          { method: "GET", path: "/a", auth: "public", timeoutMs: 0 },
          { method: "GET", path: "/b", auth: "public", ipPerMinute: -1 },
          { method: "GET", path: "/c", auth: "user", userPerMinute: 1.5 },
          { method: "GET", path: "/d", auth: "user", timeoutMs: 30_000, ipPerMinute: 0, userPerMinute: 5 },
        ],
      }),
    ).join("\n")
    expect(problems).toMatch(/GET \/a: timeoutMs/)
    expect(problems).toMatch(/GET \/b: ipPerMinute/)
    expect(problems).toMatch(/GET \/c: userPerMinute/)
    expect(problems).not.toMatch(/GET \/d/)
  })
})
