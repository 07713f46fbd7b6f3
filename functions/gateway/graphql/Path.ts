/** Where the gateway answers GraphQL (its own path: never proxied, and no function may declare it). */
export const GRAPHQL_PATH = "/graphql"
