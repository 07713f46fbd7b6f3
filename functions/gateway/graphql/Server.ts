import { GraphQLError, type GraphQLSchema, type ValidationContext } from "graphql/index.js"
import { GRAPHQL_PATH } from "./Path.ts"
import { type FieldContext, schemaOf } from "./Schema.ts"
import { createYoga, EnvelopArmorPlugin, type GraphiQLOptions, maskError } from "./Yoga.js"

/** What one GraphQL request may ask for; past any of them it is refused before a field runs (400). */
export const LIMITS = {
  /** Nested selections (`{ a { b { c } } }` is 3); introspection is not counted. */
  depth: 8,
  /** graphql-armor's cost: 2 per object, 1 per scalar, times 1.5 per level of depth. */
  cost: 1_000,
  aliases: 15,
  /** Lexical tokens of the document (the standard introspection query has 163). */
  tokens: 2_000,
  directives: 10,
} as const

// graphql-armor's refusals name the limit and join the other validation errors (by default it throws the first out of
// validation, which Yoga then answers as an unexpected 200).
const reported = {
  exposeLimits: true,
  propagateOnRejection: false,
  onReject: [(context: ValidationContext | null, error: GraphQLError) => context?.reportError(error)],
}

// graphql-armor's refusals are validation errors Yoga does not tag: tagged here as Yoga tags its own, they answer 400
// (200 to a client that accepts only application/json, as GraphQL over HTTP says). Armor words them "Syntax Error:
// Query depth limit of 8 exceeded, found 10."; the misleading prefix goes.
const refusedWith400 = {
  onValidate:
    () =>
    ({
      result,
      setResult,
    }: {
      readonly result: ReadonlyArray<GraphQLError>
      readonly setResult: (errors: ReadonlyArray<GraphQLError>) => void
    }) => {
      if (result.length === 0 || result.every((e) => e.extensions?.http !== undefined)) return
      setResult(
        result.map((e) =>
          e.extensions?.http !== undefined
            ? e
            : new GraphQLError(e.message.replace(/^Syntax Error: (?=.* limit of \d+ exceeded)/, ""), {
                ...(e.nodes === undefined ? {} : { nodes: e.nodes }),
                ...(e.source === undefined ? {} : { source: e.source }),
                ...(e.positions === undefined ? {} : { positions: e.positions }),
                extensions: { ...e.extensions, http: { spec: true, status: 400 } },
              }),
        ),
      )
    },
}

/** The context each request hands the server: its schema (from the current document) and its field calls. */
export interface RequestContext extends FieldContext {
  readonly schema: GraphQLSchema
}

/**
 * The GraphQL server (GraphQL Yoga) over the schema each request brings: POST with JSON (no multipart, no batching,
 * no Yoga CORS: the gateway's own applies); the limits above by graphql-armor, their message naming the limit; field
 * suggestions ("did you mean") off in production, where GraphiQL is off too.
 */
export const make = (options: {
  readonly development: boolean
  /** Renders GraphiQL (GraphiQL.js, loaded in development only); without it there is no GraphiQL. */
  readonly graphiql?: (options?: GraphiQLOptions) => string
  /** Told of an error that is not a field's problem (a defect, an answer that does not fit its type): it is masked. */
  readonly unexpected: (error: unknown) => void
}) =>
  createYoga<RequestContext>({
    schema: (context) => context.schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // GraphiQL from this process (no CDN), development only.
    graphiql:
      options.development && options.graphiql !== undefined
        ? { title: "Platform API (GraphQL)", defaultQuery: "{ meGet { id email } }" }
        : false,
    ...(options.graphiql === undefined ? {} : { renderGraphiQL: options.graphiql }),
    landingPage: false,
    multipart: false,
    batching: false,
    cors: false,
    // Fields fail with GraphQLErrors (the problems); anything else is masked as "Unexpected error." and reported.
    maskedErrors: {
      maskError: (error, message, isDev) => {
        const masked = maskError(error, message, isDev)
        // Yoga's mask keeps GraphQL's own errors (the problems, validation): only what it hid is reported.
        if (masked.message === message) options.unexpected(error)
        return masked
      },
    },
    logging: false,
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: LIMITS.depth, ...reported },
        costLimit: { maxCost: LIMITS.cost, ...reported },
        maxAliases: { n: LIMITS.aliases, ...reported },
        // Counted while parsing (no validation yet): thrown, and answered 400 as a syntax error.
        maxTokens: { n: LIMITS.tokens, exposeLimits: true },
        maxDirectives: { n: LIMITS.directives, ...reported },
        blockFieldSuggestion: { enabled: !options.development },
      }),
      refusedWith400,
    ],
  })

/** The schema of a document, built again only when the document changes (it is cached upstream for 30 s). */
export const schemas = () => {
  let last: { readonly document: unknown; readonly text: string; readonly schema: GraphQLSchema } | undefined
  return (document: unknown): GraphQLSchema => {
    if (last !== undefined && last.document === document) return last.schema
    const text = JSON.stringify(document)
    if (last !== undefined && last.text === text) {
      last = { ...last, document }
      return last.schema
    }
    last = { document, text, schema: schemaOf(document) }
    return last.schema
  }
}
