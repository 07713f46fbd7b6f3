import { readFileSync } from "node:fs"
import { join } from "node:path"
import {
  type GraphQLField,
  type GraphQLObjectType,
  type GraphQLSchema,
  getIntrospectionQuery,
  graphql,
  isNonNullType,
  parse,
  validate,
} from "graphql/index.js"
import { describe, expect, it } from "vitest"
import type { RestAnswer, RestCall } from "./Dispatch.ts"
import { BODY_ARGUMENT, camel, fieldValueOf, operationsOf, restCallOf, schemaOf } from "./Schema.ts"

// The platform's public OpenAPI document as the gateway serves it (client/client.test.ts checks this copy is the
// served one): the GraphQL schema is derived from it, never written by hand.
const document = JSON.parse(readFileSync(join(import.meta.dirname, "../../../client/openapi.json"), "utf8")) as {
  paths: Record<string, Record<string, Record<string, unknown>>>
  components: Record<string, unknown>
}

const fieldsOf = (type: GraphQLObjectType | null | undefined): Record<string, GraphQLField<unknown, unknown>> =>
  type?.getFields() ?? {}

// Every operation of the document, as method and template.
const documentOperations = (doc: typeof document) =>
  Object.entries(doc.paths).flatMap(([template, item]) =>
    Object.keys(item)
      .filter((m) => ["get", "put", "post", "patch", "delete"].includes(m))
      .map((m) => ({ method: m.toUpperCase(), template, operation: item[m]! })),
  )

describe("the GraphQL schema derived from the OpenAPI document", () => {
  const schema = schemaOf(document)
  const { operations, skipped } = operationsOf(document)

  it("has one field per operation: GET as a query, the rest as mutations, named after the operationId", () => {
    const queries = fieldsOf(schema.getQueryType())
    const mutations = fieldsOf(schema.getMutationType())
    // Each operation of the document is a field or is listed as skipped, with a reason; nothing else is a field.
    const all = documentOperations(document)
    expect(operations.length + skipped.length).toBe(all.length)
    for (const { method, template, operation } of all) {
      const exposed = operations.find((o) => o.method === method && o.template === template)
      if (exposed === undefined) {
        expect(skipped.find((s) => s.method === method && s.template === template)?.reason).toBeTruthy()
        continue
      }
      expect(exposed.field).toBe(camel(String(operation.operationId)))
      const field = (method === "GET" ? queries : mutations)[exposed.field]
      expect(field, `${method} ${template}`).toBeDefined()
      // Every parameter (but If-None-Match) is an argument, required as the document says; the body is `input`.
      const parameters = ((operation.parameters ?? []) as Array<{ name: string; in: string; required?: boolean }>)
        .filter((p) => p.name.toLowerCase() !== "if-none-match")
        .map((p) => ({ name: camel(p.name), required: p.in === "path" || p.required === true }))
      const body = operation.requestBody as { required?: boolean } | undefined
      const expected = [...parameters, ...(body ? [{ name: BODY_ARGUMENT, required: body.required === true }] : [])]
      expect(field!.args.map((a) => ({ name: a.name, required: isNonNullType(a.type) }))).toEqual(expected)
    }
    expect(Object.keys(queries).length + Object.keys(mutations).length).toBe(operations.length)
  })

  it("leaves out only what is not JSON: uploads, feeds, files and redirects", () => {
    expect(skipped.map((s) => `${s.method} ${s.template}`).sort()).toEqual([
      "GET /api/v1/auth/oidc/{provider}/authorize",
      "GET /api/v1/blog/blobs/{token}",
      "GET /api/v1/blog/feed.xml",
      "GET /api/v1/blog/posts/{id}/attachments/{attachmentId}",
      "POST /api/v1/blog/blobs/{token}",
    ])
  })

  it("follows the document: a route added to it appears as a field with its typed arguments and result", () => {
    const grown = structuredClone(document)
    grown.paths["/api/v1/things/{id}/polish"] = {
      post: {
        operationId: "things.polish",
        parameters: [
          { name: "id", in: "path", required: true, schema: { type: "string" } },
          { name: "Idempotency-Key", in: "header", schema: { type: "string" } },
        ],
        requestBody: {
          required: true,
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: { shine: { type: "integer", minimum: 1, maximum: 10 }, note: { type: "string" } },
                required: ["shine"],
              },
            },
          },
        },
        responses: {
          "200": {
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  properties: { id: { type: "string" }, shine: { type: "integer", minimum: 1, maximum: 10 } },
                  required: ["id", "shine"],
                },
              },
            },
          },
        },
      },
    }
    const before = fieldsOf(schema.getMutationType()).thingsPolish
    expect(before).toBeUndefined()
    const field = fieldsOf(schemaOf(grown).getMutationType()).thingsPolish
    expect(field?.args.map((a) => `${a.name}: ${a.type}`)).toEqual([
      "id: String!",
      "idempotencyKey: String",
      "input: ThingsPolishInput!",
    ])
    expect(String(field?.type)).toBe("ThingsPolishResult!")
    expect(field?.description).toContain("`POST /api/v1/things/{id}/polish`")
  })

  it("types results and inputs from the JSON Schemas: objects, lists, nullability, 32-bit integers", () => {
    const queries = fieldsOf(schema.getQueryType())
    expect(String(queries.meGet?.type)).toBe("User!")
    const mutations = fieldsOf(schema.getMutationType())
    const create = mutations.rolesCreate!
    expect(create.args.map((a) => `${a.name}: ${a.type}`)).toEqual(["input: RolesCreateInput!"])
    const input = schema.getType("RolesCreateInput") as unknown as { getFields(): Record<string, { type: unknown }> }
    expect(Object.fromEntries(Object.entries(input.getFields()).map(([k, v]) => [k, String(v.type)]))).toEqual({
      name: "String!",
      description: "String",
      permissions: "[String!]!",
    })
    // A bounded integer is an Int; the document's ±2^53 ones are Floats (GraphQL's Int is 32-bit).
    const plan = schema.getType("PlansCreateInput") as unknown as { getFields(): Record<string, { type: unknown }> }
    expect(String(plan.getFields().trialDays?.type)).toBe("Int")
    expect(String(plan.getFields().amount?.type)).toBe("Float!")
    // An answer without a body is `true` once done.
    expect(String(mutations.sessionsLogoutAll?.type)).toBe("Boolean!")
  })

  it("answers introspection and validates the documented example queries", async () => {
    const result = await graphql({ schema, source: getIntrospectionQuery() })
    expect(result.errors).toBeUndefined()
    for (const source of [
      "{ meGet { id email } }",
      'mutation { rolesCreate(input: { name: "x", permissions: [] }) { id } }',
      '{ plansList(limit: "5") { items { id code amount currency } nextCursor } }',
    ]) {
      expect(validate(schema as GraphQLSchema, parse(source))).toEqual([])
    }
  })
})

describe("a field's REST request and answer", () => {
  const { operations } = operationsOf(document)
  const op = (field: string) => operations.find((o) => o.field === field)!

  it("puts path parameters in the template, query parameters in the query, headers apart, the body as JSON", () => {
    const call: RestCall = restCallOf(op("writingUpdate"), {
      id: "a/b",
      ifMatch: '"v1"',
      input: { title: "T" },
    })
    expect(call).toEqual({
      method: "PATCH",
      path: "/api/v1/blog/posts/a%2Fb",
      headers: { "if-match": '"v1"' },
      body: '{"title":"T"}',
    })
    expect(restCallOf(op("auditList"), { limit: "5", actorId: "u 1" }).path).toBe(
      "/api/v1/audit/events?limit=5&actorId=u+1",
    )
  })

  it("answers 2xx JSON as the value, a body-less 2xx as true, a problem as an error with its code in extensions", () => {
    const answer = (status: number, text: string, contentType?: string): RestAnswer => ({ status, text, contentType })
    expect(fieldValueOf(answer(200, '{"id":"1"}', "application/json"))).toEqual({ id: "1" })
    expect(fieldValueOf(answer(204, ""))).toBe(true)
    const problem = {
      type: "urn:problem:validation_failed",
      title: "Validation failed",
      status: 400,
      code: "validation_failed",
      detail: "The request does not match the API contract",
      errors: [{ path: "email", message: "not an email" }],
    }
    const thrown = (() => {
      try {
        fieldValueOf(answer(400, JSON.stringify(problem), "application/problem+json"))
      } catch (error) {
        return error as { message: string; extensions: unknown }
      }
    })()
    expect(thrown?.message).toBe(problem.detail)
    expect(thrown?.extensions).toEqual({
      code: "validation_failed",
      status: 400,
      detail: problem.detail,
      errors: problem.errors,
    })
    // A bare error (not problem+json) gets the platform's code for its status.
    expect(() => fieldValueOf(answer(502, "<html>"))).toThrow(
      expect.objectContaining({ extensions: { code: "bad_gateway", status: 502 } }),
    )
  })
})
