import {
  GraphQLBoolean,
  GraphQLError,
  type GraphQLFieldConfig,
  type GraphQLFieldConfigArgumentMap,
  GraphQLFloat,
  GraphQLInputObjectType,
  type GraphQLInputType,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  type GraphQLOutputType,
  GraphQLScalarType,
  GraphQLSchema,
  GraphQLString,
  Kind,
  type ValueNode,
} from "graphql/index.js"
// `graphql/index.js`, not `graphql`: the CommonJS build Yoga loads, also under Vite (which would pick the ES build by
// its `module` field and make two graphql instances, whose schemas the other refuses).
import * as Problem from "../../../shared/Problem.ts"
import type { RestAnswer, RestCall } from "./Dispatch.ts"

type Json = Record<string, unknown>

const isObject = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

/** One argument of a field: a path, query or header parameter of the operation. */
export interface Parameter {
  /** The GraphQL argument's name (camelCase of the parameter's). */
  readonly argument: string
  /** The parameter's name on the wire. */
  readonly name: string
  readonly in: "path" | "query" | "header"
  readonly required: boolean
  readonly schema: unknown
}

/** One public operation of the OpenAPI document as a GraphQL field. */
export interface Operation {
  readonly field: string
  readonly kind: "query" | "mutation"
  readonly method: string
  readonly template: string
  readonly operationId: string
  readonly description: string
  readonly parameters: ReadonlyArray<Parameter>
  /** The JSON request body (the `input` argument), when the operation takes one. */
  readonly body: { readonly schema: unknown; readonly required: boolean } | undefined
  /** The JSON schema of the success answer; undefined when the answer has no body (the field answers `true`). */
  readonly result: unknown
}

/** An operation of the document that has no GraphQL field, and why. */
export interface Skipped {
  readonly method: string
  readonly template: string
  readonly reason: string
}

/** The argument that carries an operation's JSON request body. */
export const BODY_ARGUMENT = "input"

// Conditional GETs have no use in GraphQL: every answer carries its body.
const DROPPED_HEADERS = new Set(["if-none-match"])

const METHODS = ["get", "put", "post", "delete", "patch"]

const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/

/** camelCase of a dotted or dashed name: `sessions.logoutAll` → `sessionsLogoutAll`, `idempotency-key` → `idempotencyKey`. */
export const camel = (name: string) =>
  name
    .split(/[.\-\s/]+/)
    .filter((part) => part !== "")
    .map((part, i) => (i === 0 ? part[0]!.toLowerCase() + part.slice(1) : part[0]!.toUpperCase() + part.slice(1)))
    .join("")
    .replace(/[^_0-9A-Za-z]/g, "_")

const pascal = (name: string) => {
  const c = camel(name)
  return c === "" ? c : c[0]!.toUpperCase() + c.slice(1)
}

const jsonContent = (content: unknown): { readonly schema: unknown } | undefined => {
  if (!isObject(content)) return undefined
  const json = content["application/json"]
  return isObject(json) ? { schema: json.schema ?? {} } : undefined
}

/**
 * The document's operations that GraphQL exposes: every operation with a JSON request body (or none) and a JSON
 * success answer (or none). GET operations are queries, the rest mutations; the field is the camelCase of the
 * operationId. The others (uploads, feeds, redirects, binary downloads) are listed as skipped.
 */
export const operationsOf = (
  document: unknown,
): { readonly operations: ReadonlyArray<Operation>; readonly skipped: ReadonlyArray<Skipped> } => {
  const operations: Array<Operation> = []
  const skipped: Array<Skipped> = []
  const fields = new Set<string>()
  const paths = isObject(document) && isObject(document.paths) ? document.paths : {}
  for (const [template, item] of Object.entries(paths)) {
    if (!isObject(item)) continue
    for (const method of METHODS) {
      const operation = item[method]
      if (!isObject(operation)) continue
      const skip = (reason: string) => skipped.push({ method: method.toUpperCase(), template, reason })
      const operationId = typeof operation.operationId === "string" ? operation.operationId : `${method} ${template}`
      const field = camel(operationId)
      if (!NAME.test(field) || fields.has(field)) {
        skip(`its operationId ${operationId} makes no distinct field name`)
        continue
      }
      const requestBody = isObject(operation.requestBody) ? operation.requestBody : undefined
      const body = requestBody === undefined ? undefined : jsonContent(requestBody.content)
      if (requestBody !== undefined && body === undefined) {
        skip("its request body is not JSON (an upload)")
        continue
      }
      const responses = isObject(operation.responses) ? operation.responses : {}
      const success = Object.keys(responses)
        .filter((status) => /^2\d\d$/.test(status))
        .sort()
        .map((status) => responses[status])
        .filter(isObject)
      if (success.length === 0) {
        skip("it answers with a redirect, not JSON")
        continue
      }
      const withContent = success.find((r) => isObject(r.content) && Object.keys(r.content).length > 0)
      const result = withContent === undefined ? undefined : jsonContent(withContent.content)
      if (withContent !== undefined && result === undefined) {
        skip("its answer is not JSON (a feed or a file)")
        continue
      }
      const parameters: Array<Parameter> = []
      for (const p of Array.isArray(operation.parameters) ? operation.parameters : []) {
        if (!isObject(p) || typeof p.name !== "string") continue
        if (p.in !== "path" && p.in !== "query" && p.in !== "header") continue
        if (p.in === "header" && DROPPED_HEADERS.has(p.name.toLowerCase())) continue
        parameters.push({
          argument: camel(p.name),
          name: p.in === "header" ? p.name.toLowerCase() : p.name,
          in: p.in,
          required: p.in === "path" || p.required === true,
          schema: p.schema ?? {},
        })
      }
      const names = [...parameters.map((p) => p.argument), ...(body === undefined ? [] : [BODY_ARGUMENT])]
      if (names.some((n) => !NAME.test(n)) || new Set(names).size !== names.length) {
        skip("its parameters make no distinct argument names")
        continue
      }
      fields.add(field)
      const permission = operation["x-required-permission"]
      const signedIn = Array.isArray(operation.security) && operation.security.length > 0
      const needs =
        typeof permission === "string"
          ? `Needs the permission \`${permission}\`.`
          : signedIn
            ? "Needs a signed-in caller."
            : "Public."
      const summary = [operation.summary, operation.description].find((s) => typeof s === "string" && s !== "")
      operations.push({
        field,
        kind: method === "get" ? "query" : "mutation",
        method: method.toUpperCase(),
        template,
        operationId,
        description: [`\`${method.toUpperCase()} ${template}\`. ${needs}`, summary].filter(Boolean).join("\n\n"),
        parameters,
        body: body === undefined ? undefined : { schema: body.schema, required: requestBody?.required === true },
        result: result?.schema,
      })
    }
  }
  return { operations, skipped }
}

const literal = (node: ValueNode, variables: Readonly<Record<string, unknown>> | null | undefined): unknown => {
  switch (node.kind) {
    case Kind.NULL:
      return null
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value)
    case Kind.STRING:
    case Kind.ENUM:
      return node.value
    case Kind.BOOLEAN:
      return node.value
    case Kind.LIST:
      return node.values.map((v) => literal(v, variables))
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value, variables)]))
    case Kind.VARIABLE:
      return variables?.[node.name.value]
  }
}

/** Any JSON value: for the few schemas GraphQL types cannot express (maps with free keys, unions of shapes). */
export const JSONScalar = new GraphQLScalarType({
  name: "JSON",
  description: "Any JSON value, as the REST API's schema for it allows (maps with free keys, unions of shapes).",
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (node, variables) => literal(node, variables),
})

const INT32 = 2 ** 31

const NON_FINITE = new Set<unknown>(["Infinity", "-Infinity", "NaN"])

// The schema without its `null` alternative, and whether it had one.
const nonNull = (schema: Json): { readonly schema: Json; readonly nullable: boolean } => {
  if (Array.isArray(schema.type) && schema.type.includes("null")) {
    const rest = schema.type.filter((t) => t !== "null")
    return { schema: { ...schema, type: rest.length === 1 ? rest[0] : rest }, nullable: true }
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const options = schema[key]
    if (!Array.isArray(options)) continue
    const rest = options.filter((o) => !(isObject(o) && o.type === "null"))
    if (rest.length === options.length) continue
    const { [key]: _, ...others } = schema
    return {
      schema: rest.length === 1 && isObject(rest[0]) ? { ...others, ...rest[0] } : { ...others, [key]: rest },
      nullable: true,
    }
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length === 1 && isObject(schema.allOf[0])) {
    const { allOf: _, ...others } = schema
    return nonNull({ ...others, ...schema.allOf[0] })
  }
  return { schema, nullable: false }
}

const enumDescription = (schema: Json) =>
  Array.isArray(schema.enum) ? `One of: ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}.` : undefined

// GraphQL types from the document's JSON Schemas: one named type per component schema and per distinct inline
// object shape (the first place it appears names it), outputs and inputs apart.
class Types {
  private readonly byKey = new Map<string, GraphQLOutputType | GraphQLInputType>()
  private readonly names = new Set<string>()
  private readonly components: Json
  constructor(components: Json) {
    this.components = components
  }

  private unique(name: string) {
    let candidate = name
    for (let i = 2; this.names.has(candidate); i++) candidate = `${name}${i}`
    this.names.add(candidate)
    return candidate
  }

  // A `$ref` to a component schema: the schema and its type name (`UserEncoded` → `User`).
  private deref(schema: Json): { readonly schema: Json; readonly hint: string } | undefined {
    if (typeof schema.$ref !== "string" || !schema.$ref.startsWith("#/components/schemas/")) return undefined
    const name = schema.$ref.slice("#/components/schemas/".length)
    const target = this.components[name]
    return { schema: isObject(target) ? target : {}, hint: pascal(name.replace(/Encoded$/, "")) }
  }

  // The scalar a schema maps to, or undefined for objects and arrays.
  private scalar(schema: Json): GraphQLScalarType | undefined {
    if (Array.isArray(schema.enum)) {
      return schema.enum.every((v) => typeof v === "string") ? GraphQLString : JSONScalar
    }
    switch (schema.type) {
      case "string":
        return GraphQLString
      case "boolean":
        return GraphQLBoolean
      case "number":
        return GraphQLFloat
      case "integer": {
        // GraphQL's Int is 32-bit: wider integers (the document bounds most at ±2^53) are Float, exact to 2^53.
        const min = typeof schema.minimum === "number" ? schema.minimum : -Infinity
        const max = typeof schema.maximum === "number" ? schema.maximum : Infinity
        return min >= -INT32 && max < INT32 ? GraphQLInt : GraphQLFloat
      }
    }
    for (const key of ["anyOf", "oneOf"] as const) {
      const options = schema[key]
      if (Array.isArray(options)) {
        // Alternatives that are all strings (an enum and a pattern) stay a string; a number that may also be written
        // "Infinity" or "NaN" (how the services' schemas encode a JSON number) is a Float; other unions are JSON.
        const alternatives = options.filter(isObject).map((o) => nonNull(o).schema)
        const all = alternatives.map((o) => this.scalar(o))
        if (all.every((s) => s === GraphQLString)) return GraphQLString
        const numeric = alternatives.filter((o) => !(Array.isArray(o.enum) && o.enum.every((v) => NON_FINITE.has(v))))
        if (numeric.length === 1 && (numeric[0]!.type === "number" || numeric[0]!.type === "integer")) {
          return this.scalar(numeric[0]!)
        }
        return JSONScalar
      }
    }
    if (schema.type === "object" || schema.type === "array" || schema.properties !== undefined) return undefined
    return JSONScalar
  }

  // Objects GraphQL can type: named properties only (a map with free keys, or no properties, is JSON).
  private fieldsOf(schema: Json): Array<[string, Json]> | undefined {
    if (!isObject(schema.properties)) return undefined
    const entries = Object.entries(schema.properties).filter((e): e is [string, Json] => isObject(e[1]))
    if (entries.length === 0 || entries.some(([name]) => !NAME.test(name) || name.startsWith("__"))) return undefined
    if (isObject(schema.additionalProperties) || schema.additionalProperties === true) return undefined
    return entries
  }

  // A property's schema as a type is made of it: nullability peeled off (on the reference and behind it), a reference
  // followed (its name then names the type, and keys its cache entry).
  private unwrapped(raw: unknown, hint: string) {
    const { schema: plain, nullable } = nonNull(isObject(raw) ? raw : {})
    const ref = this.deref(plain)
    const name = ref?.hint ?? hint
    const inner = nonNull(ref?.schema ?? plain)
    return {
      schema: inner.schema,
      name,
      refKey: ref === undefined ? undefined : `ref ${name}`,
      nullable: nullable || inner.nullable,
    }
  }

  output(raw: unknown, hint: string): { readonly type: GraphQLOutputType; readonly nullable: boolean } {
    const { schema, name, refKey, nullable } = this.unwrapped(raw, hint)
    return { type: this.outputType(schema, name, refKey), nullable }
  }

  private outputType(schema: Json, hint: string, refKey: string | undefined): GraphQLOutputType {
    const scalar = this.scalar(schema)
    if (scalar !== undefined) return scalar
    if (schema.type === "array") {
      const item = this.output(schema.items, hint)
      return new GraphQLList(item.nullable ? item.type : new GraphQLNonNull(item.type))
    }
    const fields = this.fieldsOf(schema)
    if (fields === undefined) return JSONScalar
    const key = `out ${refKey ?? JSON.stringify(schema)}`
    const known = this.byKey.get(key)
    if (known !== undefined) return known as GraphQLOutputType
    const required = new Set(Array.isArray(schema.required) ? schema.required : [])
    const type: GraphQLObjectType = new GraphQLObjectType({
      name: this.unique(hint),
      ...(typeof schema.description === "string" ? { description: schema.description } : {}),
      fields: () =>
        Object.fromEntries(
          fields.map(([name, property]) => {
            return [
              name,
              fieldConfig(this.output(property, `${type.name}${pascal(name)}`), required.has(name), property),
            ]
          }),
        ),
    })
    this.byKey.set(key, type)
    return type
  }

  input(raw: unknown, hint: string): { readonly type: GraphQLInputType; readonly nullable: boolean } {
    const { schema, name, refKey, nullable } = this.unwrapped(raw, hint)
    return { type: this.inputType(schema, name, refKey), nullable }
  }

  private inputType(schema: Json, hint: string, refKey: string | undefined): GraphQLInputType {
    const scalar = this.scalar(schema)
    if (scalar !== undefined) return scalar
    if (schema.type === "array") {
      const item = this.input(schema.items, hint)
      return new GraphQLList(item.nullable ? item.type : new GraphQLNonNull(item.type))
    }
    const fields = this.fieldsOf(schema)
    if (fields === undefined) return JSONScalar
    const key = `in ${refKey ?? JSON.stringify(schema)}`
    const known = this.byKey.get(key)
    if (known !== undefined) return known as GraphQLInputType
    const required = new Set(Array.isArray(schema.required) ? schema.required : [])
    const base = hint.replace(/Input$/, "")
    const type: GraphQLInputObjectType = new GraphQLInputObjectType({
      name: this.unique(`${base}Input`),
      ...(typeof schema.description === "string" ? { description: schema.description } : {}),
      fields: () =>
        Object.fromEntries(
          fields.map(([name, property]) => {
            return [name, fieldConfig(this.input(property, `${base}${pascal(name)}`), required.has(name), property)]
          }),
        ),
    })
    this.byKey.set(key, type)
    return type
  }
}

/**
 * An object type's field for a property: non-null only when it must be there and may not be null (a property that may
 * be left out is optional here too; GraphQL cannot tell "absent" from "null" in its types), described by the schema.
 */
const fieldConfig = <T extends GraphQLOutputType | GraphQLInputType>(
  field: { readonly type: T; readonly nullable: boolean },
  required: boolean,
  property: Json,
) => ({
  type: field.nullable || !required ? field.type : new GraphQLNonNull(field.type),
  description:
    [property.description, enumDescription(nonNull(property).schema)].filter((d) => typeof d === "string").join(" ") ||
    undefined,
})

/** The REST request of a field's arguments: path parameters in the template, query parameters, headers, body. */
export const restCallOf = (operation: Operation, args: Readonly<Record<string, unknown>>): RestCall => {
  let path = operation.template
  const query = new URLSearchParams()
  const headers: Record<string, string> = {}
  const text = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value))
  for (const p of operation.parameters) {
    const value = args[p.argument]
    if (value === undefined || value === null) continue
    if (p.in === "path") path = path.replace(`{${p.name}}`, encodeURIComponent(text(value)))
    else if (p.in === "header") headers[p.name] = text(value)
    else if (Array.isArray(value)) for (const v of value) query.append(p.name, text(v))
    else query.append(p.name, text(value))
  }
  const search = query.toString()
  const input = args[BODY_ARGUMENT]
  return {
    method: operation.method,
    path: search === "" ? path : `${path}?${search}`,
    headers,
    body: input === undefined || operation.body === undefined ? undefined : JSON.stringify(input),
  }
}

/** The problem members a GraphQL error carries in `extensions`. */
export interface ProblemExtensions {
  readonly code: string
  readonly status: number
  readonly detail?: string
  readonly errors?: ReadonlyArray<{ readonly path: string; readonly message: string }>
  readonly retryAfter?: number
}

const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * A field's value from its REST answer: the JSON of a 2xx (true when it has no body), or a GraphQL error with the
 * problem's code, status, detail and field errors in `extensions` (a bare error gets the platform's code for its
 * status).
 */
export const fieldValueOf = (answer: RestAnswer): unknown => {
  if (answer.status >= 200 && answer.status < 300) {
    if (answer.text === "") return true
    const value = parsed(answer.text)
    if (value === undefined) throw problemError({ code: "bad_gateway", status: 502, detail: "the answer is not JSON" })
    return value
  }
  const problem = answer.contentType?.startsWith("application/problem+json") ? parsed(answer.text) : undefined
  const base = Problem.forStatus(answer.status)
  const p = isObject(problem) ? problem : {}
  const detail = typeof p.detail === "string" ? p.detail : undefined
  throw problemError(
    {
      code: typeof p.code === "string" ? p.code : base.code,
      status: answer.status,
      ...(detail === undefined ? {} : { detail }),
      ...(Array.isArray(p.errors) ? { errors: p.errors as ProblemExtensions["errors"] } : {}),
      ...(typeof p.retryAfter === "number" ? { retryAfter: p.retryAfter } : {}),
    },
    typeof p.title === "string" ? p.title : base.title,
  )
}

const problemError = (extensions: ProblemExtensions, title?: string) =>
  new GraphQLError(extensions.detail ?? title ?? Problem.forStatus(extensions.status).title, {
    extensions: { ...extensions },
  })

/** What the resolvers need from the request: a way to send the field's REST request. */
export interface FieldContext {
  readonly call: (call: RestCall) => Promise<RestAnswer>
}

/**
 * The GraphQL schema of the platform's public API, derived from its OpenAPI document (`operationsOf`): each field
 * sends the operation's REST request through the gateway (`FieldContext.call`) and answers its JSON, or its problem
 * as an error. Argument and result types come from the operation's JSON Schemas.
 */
export const schemaOf = (document: unknown): GraphQLSchema => {
  const { operations } = operationsOf(document)
  const components =
    isObject(document) && isObject(document.components) && isObject(document.components.schemas)
      ? document.components.schemas
      : {}
  const types = new Types(components)
  const fieldOf = (operation: Operation): GraphQLFieldConfig<unknown, FieldContext> => {
    const args: GraphQLFieldConfigArgumentMap = {}
    const base = pascal(operation.field)
    for (const p of operation.parameters) {
      const { type } = types.input(p.schema, `${base}${pascal(p.argument)}`)
      args[p.argument] = { type: p.required ? new GraphQLNonNull(type) : type }
    }
    if (operation.body !== undefined) {
      const { type } = types.input(operation.body.schema, `${base}Input`)
      args[BODY_ARGUMENT] = { type: operation.body.required ? new GraphQLNonNull(type) : type }
    }
    const result =
      operation.result === undefined
        ? {
            type: new GraphQLNonNull(GraphQLBoolean),
            note: "\n\nThe REST answer has no body: the field is `true` once done.",
          }
        : (() => {
            const out = types.output(operation.result, `${base}Result`)
            return { type: out.nullable ? out.type : new GraphQLNonNull(out.type), note: "" }
          })()
    return {
      type: result.type,
      description: operation.description + result.note,
      args,
      resolve: (_source, values, context) => context.call(restCallOf(operation, values)).then(fieldValueOf),
    }
  }
  const queries = operations.filter((o) => o.kind === "query")
  const mutations = operations.filter((o) => o.kind === "mutation")
  const version = isObject(document) && isObject(document.info) ? String(document.info.version ?? "") : ""
  return new GraphQLSchema({
    query: new GraphQLObjectType({
      name: "Query",
      fields: () =>
        queries.length > 0
          ? Object.fromEntries(queries.map((o) => [o.field, fieldOf(o)]))
          : // A schema needs a query: with no service answering yet, the API's version is the only one.
            { apiVersion: { type: new GraphQLNonNull(GraphQLString), resolve: () => version } },
    }),
    ...(mutations.length === 0
      ? {}
      : {
          mutation: new GraphQLObjectType({
            name: "Mutation",
            fields: () => Object.fromEntries(mutations.map((o) => [o.field, fieldOf(o)])),
          }),
        }),
  })
}
