import { describe, expect, it } from "vitest"
import { httpUrlKey } from "../../shared/Module.ts"
import { manifests } from "../registry.ts"
import { CircuitBreaker } from "./CircuitBreaker.ts"
import { upstreamManifests } from "./Config.ts"
import { manifest } from "./module.ts"
import * as RouteTable from "./RouteTable.ts"

const table = RouteTable.fromManifests(upstreamManifests(manifests))

describe("the route table from the manifests", () => {
  it("routes every manifest route to its function with its auth requirement", () => {
    for (const m of upstreamManifests(manifests)) {
      for (const r of m.routes) {
        const concrete = r.path.replace(/\{[^}]+\}/g, "0196a4e2-0000-7000-8000-000000000000")
        const resolved = table.resolve(r.method, concrete)
        expect(resolved._tag, `${r.method} ${r.path}`).toBe("Match")
        if (resolved._tag === "Match") {
          expect(resolved.route.upstream).toBe(m.name)
          expect(resolved.route.template).toBe(r.path)
          expect(resolved.route.auth).toEqual(r.auth)
        }
      }
    }
  })

  it("prefers literal segments over parameters, across functions", () => {
    const me = table.resolve("GET", "/api/v1/users/me")
    expect(me._tag === "Match" && [me.route.upstream, me.route.auth]).toEqual(["identity", "user"])
    const mine = table.resolve("GET", "/api/v1/users/me/permissions")
    expect(mine._tag === "Match" && [mine.route.upstream, mine.route.auth]).toEqual(["authz", "user"])
    const other = table.resolve("GET", "/api/v1/users/0196a4e2-0000-7000-8000-000000000000")
    expect(other._tag === "Match" && other.route.auth).toEqual({ permission: "identity.user.read" })
    const head = table.resolve("HEAD", "/.well-known/jwks.json")
    expect(head._tag === "Match" && head.route.upstream).toBe("auth")
  })

  it("answers NotFound for unknown or ambiguous paths and MethodNotAllowed with the allowed methods", () => {
    expect(table.resolve("GET", "/api/v1/nope")._tag).toBe("NotFound")
    expect(table.resolve("GET", "/api/v1/users/me/")._tag).toBe("NotFound")
    expect(table.resolve("GET", "/api/v1/users/%2e%2e")._tag).toBe("NotFound")
    expect(table.resolve("GET", "/api/v1/users/..")._tag).toBe("NotFound")
    expect(table.resolve("GET", "/api/v1/users//roles")._tag).toBe("NotFound")
    const wrong = table.resolve("POST", "/api/v1/users/me")
    expect(wrong._tag === "MethodNotAllowed" && [...wrong.allow].sort()).toEqual(["DELETE", "GET", "HEAD", "PATCH"])
  })

  it("refuses two functions declaring the same route", () => {
    const route = { method: "GET", path: "/x", auth: "public" } as const
    expect(() =>
      RouteTable.routesOf([
        { name: "a", routes: [route] },
        { name: "b", routes: [route] },
      ]),
    ).toThrow(/declared by both a and b/)
  })

  it("refuses a route on one of the gateway's own paths (it would never be reached)", () => {
    for (const path of ["/metrics", "/docs/guide", "/openapi.json"]) {
      expect(() => RouteTable.routesOf([{ name: "blog", routes: [{ method: "GET", path, auth: "public" }] }])).toThrow(
        `route GET ${path} of blog is a path the gateway serves itself`,
      )
    }
    expect(RouteTable.isOwnPath("/docsx")).toBe(false)
  })

  it("routes nothing of the gateway itself, depends on every function it routes to, and names their URL keys", () => {
    expect(table.routes.some((r) => r.upstream === manifest.name)).toBe(false)
    const routed = upstreamManifests(manifests).map((m) => m.name)
    // Derived by the registry (shared/Module.ts `link`): a new function with routes needs no edit of the gateway.
    const dependsOn = manifests.find((m) => m.name === manifest.name)!.dependsOn
    expect(routed.filter((name) => !dependsOn.includes(name))).toEqual([])
    expect(httpUrlKey("user-prefs")).toBe("USER_PREFS_URL")
  })
})

describe("CircuitBreaker", () => {
  it("opens after N consecutive failures, lets one probe through after the cooldown, closes on its success", () => {
    let now = 0
    const breaker = new CircuitBreaker({ failureThreshold: 2, cooldownMs: 1000, now: () => now })
    breaker.failure()
    expect(breaker.admit()._tag).toBe("Allowed")
    breaker.failure()
    expect(breaker.state).toBe("open")
    expect(breaker.admit()).toEqual({ _tag: "Rejected", retryAfterMs: 1000 })
    now = 1000
    expect(breaker.admit()).toEqual({ _tag: "Allowed", probe: true })
    expect(breaker.admit()._tag).toBe("Rejected")
    breaker.failure()
    expect(breaker.state).toBe("open")
    now = 2000
    expect(breaker.admit()._tag).toBe("Allowed")
    breaker.success()
    expect(breaker.state).toBe("closed")
  })
})
