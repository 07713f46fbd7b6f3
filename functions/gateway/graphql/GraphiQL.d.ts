// The part of @graphql-yoga/render-graphiql the gateway uses (GraphiQL.js says why its own declarations are not used).
import type { GraphiQLOptions } from "./Yoga.js"

/** The whole GraphiQL page (≈ 9 MB: the editor, its styles and workers inline). */
export declare const renderGraphiQL: (options?: GraphiQLOptions) => string
