// Types of the API's answers, read from the generated document's types (client/openapi.ts): `Answer<"/api/v1/roles",
// "get">` is what that call answers on success. No shape is written twice.
import type { paths } from "../../../../client/index.ts"

type Json<R> = R extends { readonly content: { readonly "application/json": infer D } } ? D : never

/** The JSON a path's method answers on success (200 or 201). */
export type Answer<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  readonly responses: infer R
}
  ? Json<R[200 & keyof R]> | Json<R[201 & keyof R]>
  : never

/** One item of a list answer (`{items: [...]}`). */
export type Item<P extends keyof paths, M extends keyof paths[P]> =
  Answer<P, M> extends {
    readonly items: ReadonlyArray<infer I>
  }
    ? I
    : never
