import { describe, expect, it } from "vitest"
import {
  consumesTopic,
  defineRegistry,
  grpcUrlKey,
  httpUrlKey,
  link,
  type ModuleManifest,
  peerAddresses,
  registryProblems,
  startOrder,
  validate,
} from "./Module.ts"

const manifest = (overrides: Partial<ModuleManifest>): ModuleManifest => ({
  name: "blog",
  version: "1.0.0",
  description: "test",
  ports: { http: 1 },
  dependsOn: [],
  routes: [],
  permissions: [{ name: "blog.post.create", description: "create posts" }],
  events: { publishes: [], consumes: [] },
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

  // Words of a type are joined by `_` (billing.subscription.past_due); nothing else but lower-case letters and digits.
  it("takes event types of three or more dotted parts, words joined by _, and refuses the rest", () => {
    const problemsOf = (type: string) =>
      validate(manifest({ events: { publishes: [type], consumes: [] } })).filter((p) => p.includes("event type"))
    for (const good of ["blog.post.created", "blog.post.past_due", "blog.post_image.re_sized", "blog.a1.b2.c3"]) {
      expect(problemsOf(good), good).toEqual([])
    }
    for (const bad of [
      "blog.post",
      "blog.Post.created",
      "blog.post.past-due",
      "blog.post._x",
      "blog.post.x_",
      "blog..x",
    ]) {
      expect(problemsOf(bad), bad).toHaveLength(1)
    }
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
  // What auth declares (its TokenVerification.ts); the kernel knows no function's addresses itself.
  const common = [{ key: "AUTH_JWKS_URL", dependency: "auth", path: "/.well-known/jwks.json" }]

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
    expect(peerAddresses(auth, all, common).map((p) => p.key)).toEqual(["IDENTITY_URL", "IDENTITY_GRPC_URL"])
    expect(
      peerAddresses(gateway, all, common).map(
        (p) => `${p.key}=${p.http ? "http://" : ""}${p.dependency}:${p.port}${p.path}`,
      ),
    ).toEqual([
      `AUTH_URL=http://auth:${auth.ports.http}`,
      "AUTH_GRPC_URL=auth:9081",
      `IDENTITY_URL=http://identity:${identity.ports.http}`,
      "IDENTITY_GRPC_URL=identity:9082",
      `AUTH_JWKS_URL=http://auth:${auth.ports.http}/.well-known/jwks.json`,
    ])
    expect(peerAddresses(blog, all, common).map((p) => p.key)).toEqual(["AUTH_JWKS_URL"])
    expect(peerAddresses(blog, all, [])).toEqual([])
    expect(peerAddresses(blog, [identity, blog], common)).toEqual([])
    expect(httpUrlKey("user-blog")).toBe("USER_BLOG_URL")
    expect(grpcUrlKey("user-blog")).toBe("USER_BLOG_GRPC_URL")
  })
})

describe("the registry's manifests together", () => {
  const route = (path: string) => ({ method: "GET", path, auth: "public" }) as const
  const edge = manifest({ name: "gateway", ports: { http: 8080 }, edge: true, dependsOn: ["audit"], permissions: [] })
  const blog = manifest({ name: "blog", ports: { http: 8091, grpc: 9091 }, routes: [route("/api/v1/posts")] })
  const audit = manifest({ name: "audit", ports: { http: 8084 }, routes: [route("/api/v1/audit")], permissions: [] })
  const worker = manifest({ name: "worker", ports: { http: 8095 }, permissions: [] })

  it("refuses a port used twice, HTTP or gRPC, by two functions or one", () => {
    expect(registryProblems([blog, audit, edge, worker])).toEqual([])
    expect(
      registryProblems([blog, manifest({ name: "billing", ports: { http: 8092, grpc: 8091 }, permissions: [] })]),
    ).toEqual(["port 8091 (billing grpc) is already blog http's"])
    expect(
      registryProblems([manifest({ name: "billing", ports: { http: 8092, grpc: 8092 }, permissions: [] })]),
    ).toEqual(["port 8092 (billing grpc) is already billing http's"])
  })

  it("checks each manifest with its routes, and refuses a route requiring a permission no function defines", () => {
    const shop = manifest({
      name: "shop",
      ports: { http: 8093 },
      permissions: [],
      routes: [
        { method: "GET", path: "/api/v1/shop", auth: { permission: "blog.post.create" } },
        { method: "GET", path: "/api/v1/cart", auth: { permission: "cart.item.read" } },
        { method: "GET", path: "no-slash", auth: "public" },
      ],
    })
    expect(registryProblems([blog, shop])).toEqual([
      "shop: route GET no-slash must start with /",
      "shop: GET /api/v1/cart requires cart.item.read, which no function defines",
    ])
  })

  it("refuses a name twice, an unknown dependency and a second edge", () => {
    expect(
      registryProblems([
        blog,
        manifest({ name: "blog", ports: { http: 1 } }),
        manifest({ name: "shop", ports: { http: 2 }, dependsOn: ["ghost"], edge: true, permissions: [] }),
        edge,
      ]),
    ).toEqual([
      "function blog is declared twice",
      "shop depends on unknown function ghost",
      "gateway depends on unknown function audit",
      "more than one edge: shop, gateway",
    ])
    expect(() => defineRegistry([blog, manifest({ name: "shop", ports: { http: 8091 }, permissions: [] })])).toThrow(
      "the registry: port 8091 (shop http) is already blog http's",
    )
  })

  it("makes the edge depend on every function with routes, with no dependsOn edit", () => {
    const linked = defineRegistry([audit, blog, edge, worker])
    expect(linked.find((m) => m.edge)?.dependsOn).toEqual(["audit", "blog"])
    expect(linked.filter((m) => !m.edge)).toEqual([audit, blog, worker])
    expect(startOrder(linked).map((m) => m.name)).toEqual(["audit", "blog", "gateway", "worker"])
    expect(link([worker])).toEqual([worker])
  })
})

describe("events a manifest declares", () => {
  const audit = manifest({ name: "audit", permissions: [], events: { publishes: [], consumes: ["*"] } })
  const auth = manifest({
    name: "auth",
    ports: { http: 2 },
    permissions: [],
    events: { publishes: ["auth.session.revoked"], consumes: ["identity.user.deleted"] },
  })

  it("matches a subscription's topic to the consumed types' producers, or to every event", () => {
    expect(consumesTopic(auth, "identity.events")).toBe(true)
    expect(consumesTopic(auth, "authz.events")).toBe(false)
    expect(consumesTopic(auth, "auth.events")).toBe(false)
    expect(consumesTopic(audit, "anything.events")).toBe(true)
    expect(validate(audit)).toEqual([])
  })

  it("refuses a published type of another function, and a consumed type nobody publishes", () => {
    expect(validate(manifest({ events: { publishes: ["shop.order.placed"], consumes: [] } }))).toEqual([
      'published event type "shop.order.placed" must start with "blog."',
    ])
    expect(registryProblems([audit, auth])).toEqual([
      "auth consumes identity.user.deleted, which no function publishes",
    ])
  })
})
