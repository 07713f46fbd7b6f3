import { describe, expect, it } from "vitest"
import { grpcUrlKey, httpUrlKey, type ModuleManifest, peerAddresses, startOrder, validate } from "./Module.ts"

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

describe("wiring from the manifests", () => {
  const fn = (name: string, dependsOn: Array<string>, grpc?: number) => ({
    name,
    dependsOn,
    ports: { http: 8000 + name.length, ...(grpc ? { grpc } : {}) },
  })
  const auth = fn("auth", ["identity"], 9081)
  const identity = fn("identity", [], 9082)
  const gateway = fn("gateway", ["auth", "identity"])
  const blog = fn("user-blog", [])

  it("orders dependencies first, and names a cycle or an unknown dependency", () => {
    expect(startOrder([gateway, auth, blog, identity]).map((m) => m.name)).toEqual([
      "identity",
      "auth",
      "gateway",
      "user-blog",
    ])
    expect(() => startOrder([fn("a", ["b"]), fn("b", ["a"])])).toThrow("dependency cycle: a -> b -> a")
    expect(() => startOrder([fn("a", ["ghost"])])).toThrow("a depends on unknown function ghost")
  })

  it("gives each function its dependencies' HTTP and gRPC keys, and auth's JWKS to all but auth", () => {
    const all = [auth, identity, gateway, blog]
    expect(peerAddresses(auth, all).map((p) => p.key)).toEqual(["IDENTITY_URL", "IDENTITY_GRPC_URL"])
    expect(
      peerAddresses(gateway, all).map((p) => `${p.key}=${p.http ? "http://" : ""}${p.dependency}:${p.port}${p.path}`),
    ).toEqual([
      `AUTH_URL=http://auth:${auth.ports.http}`,
      "AUTH_GRPC_URL=auth:9081",
      `IDENTITY_URL=http://identity:${identity.ports.http}`,
      "IDENTITY_GRPC_URL=identity:9082",
      `AUTH_JWKS_URL=http://auth:${auth.ports.http}/.well-known/jwks.json`,
    ])
    expect(peerAddresses(blog, all).map((p) => p.key)).toEqual(["AUTH_JWKS_URL"])
    expect(httpUrlKey("user-blog")).toBe("USER_BLOG_URL")
    expect(grpcUrlKey("user-blog")).toBe("USER_BLOG_GRPC_URL")
  })
})
