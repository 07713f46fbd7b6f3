// GraphQL Yoga and graphql-armor, re-exported without their type declarations: those pull @whatwg-node/fetch's
// `/// <reference lib="dom" />` into the whole program (a DOM `BlobPart` breaks Node code that type-checks today).
// Yoga.d.ts declares the part the gateway uses.
export { EnvelopArmorPlugin } from "@escape.tech/graphql-armor"
export { createYoga, maskError } from "graphql-yoga"
