import { Effect, Schema, SchemaTransformation } from "effect"
import { ValidationFailed } from "./Problem.ts"

/**
 * `?limit=` of every list: a whole number from 1 to 100 (default 20), written plainly (no sign, exponent or leading
 * zero), which is exactly what the document's pattern says.
 */
export const Limit = Schema.String.check(
  Schema.isPattern(/^(?:[1-9][0-9]?|100)$/u, { message: "must be a whole number from 1 to 100" }),
).pipe(Schema.decodeTo(Schema.Int, SchemaTransformation.numberFromString))

/** The default page size. */
export const DEFAULT_LIMIT = 20

/** Query fields every list accepts (`?limit=&cursor=`), to spread into an endpoint's query. */
export const pageQuery = {
  limit: Schema.optional(Limit),
  cursor: Schema.optional(Schema.String.check(Schema.isMaxCodePoints(512, { message: "is too long" }))),
}

/** A page of a list: `{items, nextCursor}`; `nextCursor` is null on the last page. */
export const Page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({ items: Schema.Array(item), nextCursor: Schema.NullOr(Schema.String) })

/** A keyset position: the sort value (e.g. created_at as ISO text) and the row id that breaks ties. */
export interface Position {
  readonly at: string
  readonly id: string
}

const PositionJson = Schema.fromJsonString(Schema.Struct({ at: Schema.String, id: Schema.String }))

/** An opaque cursor for a position (base64url JSON; clients must not build it). */
export const encodeCursor = (position: Position): string =>
  Buffer.from(JSON.stringify({ at: position.at, id: position.id })).toString("base64url")

/** Reads a cursor back; anything that is not one of ours is a 400 naming `query.cursor`. */
export const decodeCursor = (cursor: string): Effect.Effect<Position, ValidationFailed> =>
  Schema.decodeUnknownEffect(PositionJson)(Buffer.from(cursor, "base64url").toString("utf8")).pipe(
    Effect.mapError(() => notOurs),
  )

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/

/**
 * Reads a cursor whose position must also pass `valid` (the list's own keyset): a well-formed cursor holding anything
 * else is the same 400, so it never reaches SQL as a bad value.
 */
export const decodeCursorWhere = (
  cursor: string,
  valid: (position: Position) => boolean,
): Effect.Effect<Position, ValidationFailed> =>
  Effect.flatMap(decodeCursor(cursor), (position) =>
    valid(position) ? Effect.succeed(position) : Effect.fail(notOurs),
  )

/** Reads a cursor of a (time, uuid) keyset, the usual one (created_at, id). */
export const decodeTimeCursor = (cursor: string): Effect.Effect<Position, ValidationFailed> =>
  decodeCursorWhere(
    cursor,
    (position) => UUID.test(position.id) && ISO_TIME.test(position.at) && !Number.isNaN(Date.parse(position.at)),
  )

const notOurs = new ValidationFailed({
  detail: "The request does not match the API contract",
  errors: [{ path: "query.cursor", message: "is not a cursor this list handed out" }],
})

/** Builds a page from `limit + 1` fetched rows: the extra row only tells that there is a next page. */
export const pageOf = <A>(rows: ReadonlyArray<A>, limit: number, positionOf: (row: A) => Position) => {
  const items = rows.slice(0, limit)
  const last = items[items.length - 1]
  return { items, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(positionOf(last)) : null }
}
