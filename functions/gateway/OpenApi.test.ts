import { Schema } from "effect"
import { OpenApi } from "effect/http-api"
import { beforeAll, describe, expect, it } from "vitest"
import { Limit } from "../../shared/Pagination.ts"
import { NewPassword } from "../auth/Api.ts"
import { Email } from "../identity/User.ts"
import { merge } from "./OpenApi.ts"
import { settingsOf } from "./RouteSettings.ts"
import { fromManifests, type Route } from "./RouteTable.ts"
import { platformDocument, upstreamApis } from "./testing/platformDocument.ts"
import { redoclyLint } from "./testing/redocly.ts"

type Json = Record<string, any>

let document: Json
let routes: ReadonlyArray<Route>
let limitsOf: (route: Route) => { ip: number; user: number }
// The statuses each function's own document gives an endpoint, by "METHOD /path/{}".
const declared = new Map<string, Set<number>>()
const shape = (method: string, path: string) =>
  `${method.toUpperCase()} ${path.replace(/\{[^}]+\}/g, "{}").replace(/:[^/]+/g, "{}")}`

beforeAll(async () => {
  const built = await platformDocument()
  document = built.document
  routes = built.table.routes
  const options = { ...built.config, overrides: built.config.routeOverrides }
  limitsOf = (route) => {
    const s = settingsOf(route, options)
    return { ip: s.ip.perMinute, user: s.user.perMinute }
  }
  // What each function's own document (the one it serves) says its endpoints answer.
  for (const { api } of await upstreamApis()) {
    const own = OpenApi.fromApi(api as unknown as Parameters<typeof OpenApi.fromApi>[0]) as Json
    for (const [path, item] of Object.entries(own.paths as Json)) {
      for (const [method, operation] of Object.entries(item as Json)) {
        declared.set(shape(method, path), new Set(Object.keys((operation as Json).responses).map(Number)))
      }
    }
  }
})

const operationOf = (route: Route): Json => document.paths[route.template]?.[route.method.toLowerCase()]

const resolves = (schema: Json): boolean => {
  const refs = Array.isArray(schema.anyOf) ? schema.anyOf : [schema]
  return refs.every((s: Json) => {
    const name = String(s.$ref ?? "").replace("#/components/schemas/", "")
    return name !== "" && document.components.schemas[name] !== undefined
  })
}

describe("the platform's OpenAPI document", () => {
  it("lists, for every routed operation, every status the platform can answer there", () => {
    expect(routes.length).toBeGreaterThan(20)
    for (const route of routes) {
      const operation = operationOf(route)
      const name = `${route.method} ${route.template}`
      expect(operation, name).toBeDefined()
      // The gateway's and the kernel's answers on any route, written out here apart from the code that derives them.
      const expected = new Set([400, 408, 413, 431, 500, 503, 504])
      if (route.auth !== "public") expected.add(401)
      if (typeof route.auth === "object") expected.add(403)
      if (route.template.includes("{")) expected.add(404)
      const { ip, user } = limitsOf(route)
      if (ip > 0 || (route.auth !== "public" && user > 0)) expected.add(429)
      for (const status of declared.get(shape(route.method, route.template)) ?? []) expected.add(status)
      const statuses = Object.keys(operation.responses).map(Number)
      for (const status of expected) expect(statuses, `${name} lacks ${status}`).toContain(status)
      expect(
        statuses.some((s) => s >= 200 && s < 400),
        `${name} has no success`,
      ).toBe(true)
      for (const status of statuses.filter((s) => s >= 400)) {
        const response = operation.responses[String(status)]
        const schema = response.content?.["application/problem+json"]?.schema
        expect(schema, `${name} ${status} is not problem+json`).toBeDefined()
        expect(resolves(schema), `${name} ${status} refers to a missing schema`).toBe(true)
      }
      if (route.auth === "public") expect(operation.security).toEqual([])
      else expect(operation.security).toEqual([{ bearer: [] }])
      if (typeof route.auth === "object") expect(operation["x-required-permission"]).toBe(route.auth.permission)
    }
  })

  it("documents a new route's auth and the gateway's answers without code for it", () => {
    const route: Route = {
      method: "POST",
      template: "/api/v1/things/{id}",
      upstream: "things",
      auth: { permission: "things.thing.create" },
    }
    const merged = merge(
      fromManifests([
        {
          name: "things",
          routes: [{ method: "POST", path: route.template, auth: route.auth, ipPerMinute: 0, userPerMinute: 7 }],
        },
      ]),
      [
        {
          upstream: "things",
          document: {
            openapi: "3.1.0",
            paths: {
              [route.template]: {
                post: { operationId: "things.create", responses: { "201": { description: "Created" } } },
              },
            },
          },
        },
      ],
      { title: "t", version: "1" },
      {
        settingsOf: (r) =>
          settingsOf(r, { maxBodyBytes: 1024, timeoutMs: 1234, ipPerMinute: 0, userPerMinute: 0, overrides: [] }),
      },
    ) as Json
    const operation = merged.paths[route.template].post
    expect(Object.keys(operation.responses)).toEqual([
      "201",
      "400",
      "401",
      "403",
      "404",
      "408",
      "413",
      "429",
      "431",
      "500",
      "503",
      "504",
    ])
    expect(operation.responses["429"].description).toContain("7 per minute per user")
    expect(operation.responses["429"].headers["Retry-After"]).toBeDefined()
    expect(operation.responses["504"].description).toContain("1234 ms")
    expect(operation.responses["413"].description).toContain("1024 bytes")
    expect(operation["x-required-permission"]).toBe("things.thing.create")
  })

  it("states the request constraints the server enforces", () => {
    const body = (path: string, method = "post") =>
      document.paths[path][method].requestBody.content["application/json"].schema as Json
    const register = body("/api/v1/auth/register").properties
    expect(register.password).toMatchObject({ minLength: 8, maxLength: 128 })
    expect(JSON.stringify(register.email)).toContain('"format":"email"')
    expect(JSON.stringify(register.email)).toContain('"pattern"')
    expect(body("/api/v1/auth/password-reset/confirm").properties.newPassword).toMatchObject({
      minLength: 8,
      maxLength: 128,
    })
    expect(body("/api/v1/users/me/password").properties.newPassword).toMatchObject({ minLength: 8 })

    // Lengths count code points on both sides; the document's pattern is the one checked.
    const accepts = (schema: Schema.Top, value: string) =>
      Schema.decodeUnknownExit(schema as never)(value)._tag === "Success"
    const codePoints = (s: string) => [...s].length
    for (const password of ["1234567", "12345678", "😀😀😀😀", "😀😀😀😀😀😀😀😀", "a".repeat(128), "a".repeat(129)]) {
      expect(accepts(NewPassword, password), password).toBe(codePoints(password) >= 8 && codePoints(password) <= 128)
    }
    const emailPattern = new RegExp(
      JSON.stringify(register.email)
        .match(/"pattern":"((?:[^"\\]|\\.)*)"/)![1]!
        .replace(/\\\\/g, "\\"),
      "u",
    )
    for (const email of ["a@b.co", "a b@c.de", "a@b", "@b.co", "ä@b.de", "a@@b.co"]) {
      expect(accepts(Email, email), email).toBe(emailPattern.test(email))
    }
    const limit = document.paths["/api/v1/roles"].get.parameters.find((p: Json) => p.name === "limit").schema
    const limitPattern = new RegExp(limit.pattern, "u")
    for (const value of ["1", "20", "100", "0", "101", "01", "1e1", " 5", "5.0", "-1"]) {
      expect(accepts(Limit, value), value).toBe(limitPattern.test(value))
    }
  })
})

describe("Redocly's recommended lint", () => {
  it("finds no error and no warning in the document", () => {
    const started = Date.now()
    const { clean, output } = redoclyLint(document)
    expect(clean, output).toBe(true)
    console.log(`redocly lint: ${Date.now() - started} ms`)
  })
})
