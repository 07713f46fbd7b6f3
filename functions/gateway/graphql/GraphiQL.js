// GraphiQL with its scripts, styles and editor workers in the page (no CDN: works offline), for development only.
// Re-exported without its type declarations for the reason Yoga.js gives; GraphiQL.d.ts declares what is used.
export { renderGraphiQL } from "@graphql-yoga/render-graphiql"
