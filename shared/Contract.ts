import { Schema } from "effect"
import type { HttpApiGroup } from "effect/http-api"
import { HttpApi, OpenApi } from "effect/http-api"
import { routesOf } from "./access/Route.ts"
import type { ModuleDeclaration } from "./Module.ts"
import { fromRoutes, KernelProblems } from "./OpenApiContract.ts"
import { headerParsing, strictParsing } from "./Server.ts"

/**
 * A function's public HTTP contract as every function states it: its groups (each endpoint declaring who may call it,
 * see `Route`), the kernel's refusals (`KernelProblems`), strict request parsing (unknown fields and every problem
 * reported), and the document's title, version and description from the manifest, with each route's security and
 * answers from its declaration. `Api.ts` exports `class Api extends Contract.make(...) {}`.
 */
export const make = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>,
  manifest: Pick<ModuleDeclaration, "name" | "version" | "description">,
) =>
  api
    .middleware(KernelProblems)
    .annotate(HttpApi.ParseOptions, strictParsing)
    .annotate(HttpApi.HeadersParseOptions, headerParsing)
    .annotateMerge(OpenApi.annotations({ title: title(manifest.name), version: manifest.version }))
    .annotateMerge(fromRoutes(routesOf(api), { description: manifest.description }))

/** `identity` → `Identity`, `user-prefs` → `User prefs`: the document's title. */
const title = (name: string) => `${name[0]?.toUpperCase() ?? ""}${name.slice(1).replaceAll("-", " ")}`

/** The header of a create or pay that may be retried (`Idempotency.ts` replays its answer). */
export const IDEMPOTENCY_KEY = "idempotency-key"

/** An endpoint's `Idempotency-Key` header (optional; a malformed one is a 400 from `Idempotency.keyOf`). */
export const idempotencyKeyHeader = { [IDEMPOTENCY_KEY]: Schema.optional(Schema.String) } as const
