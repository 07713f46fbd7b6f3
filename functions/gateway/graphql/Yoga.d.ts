// The part of GraphQL Yoga and graphql-armor the gateway uses (Yoga.js says why their own declarations are not used).
import type { GraphQLError, GraphQLSchema, ValidationContext } from "graphql/index.js"

/** A Yoga server as the gateway calls it: one Fetch API request in, its response out. */
export interface YogaServer<Context> {
  handleRequest(request: Request, context: Context): Response | Promise<Response>
}

export type MaskError = (error: unknown, message: string, isDev?: boolean) => Error

export interface GraphiQLOptions {
  readonly title?: string
  readonly defaultQuery?: string
}

export interface YogaOptions<Context> {
  readonly schema: (context: Context) => GraphQLSchema
  readonly graphqlEndpoint: string
  readonly graphiql: false | GraphiQLOptions
  /** The GraphiQL page (Yoga's default loads it from unpkg.com). */
  readonly renderGraphiQL?: (options?: GraphiQLOptions) => string
  readonly landingPage: boolean
  readonly multipart: boolean
  readonly batching: boolean
  readonly cors: boolean
  readonly maskedErrors: { readonly maskError: MaskError }
  readonly logging: boolean
  readonly plugins: ReadonlyArray<unknown>
}

export declare const createYoga: <Context>(options: YogaOptions<Context>) => YogaServer<Context>

export declare const maskError: MaskError

interface Limit {
  readonly n?: number
  readonly exposeLimits?: boolean
  readonly errorMessage?: string
  readonly propagateOnRejection?: boolean
  readonly onReject?: ReadonlyArray<(context: ValidationContext | null, error: GraphQLError) => void>
}

export interface ArmorConfig {
  readonly maxDepth?: Limit & { readonly ignoreIntrospection?: boolean }
  readonly costLimit?: Omit<Limit, "n"> & { readonly maxCost?: number; readonly ignoreIntrospection?: boolean }
  readonly maxAliases?: Limit
  readonly maxTokens?: Limit
  readonly maxDirectives?: Limit
  readonly blockFieldSuggestion?: { readonly enabled?: boolean; readonly mask?: string }
}

export declare const EnvelopArmorPlugin: (config: ArmorConfig) => unknown
