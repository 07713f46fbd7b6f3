import { createHmac, timingSafeEqual } from "node:crypto"
import { Effect, Option, Redacted, Schema, Stream } from "effect"
import type * as Multipart from "effect/http/Multipart"

// The platform's own signed blob URLs, for a store that has no server of its own (the embedded filesystem store): an
// upload is an HTML form POSTed exactly as to S3's POST Object (the presigned fields, then the file), a download a
// plain GET. The URL's last segment is a token saying what it allows, signed with the store's key; nothing in it is
// trusted until its signature is checked, and then nothing else is: the form must match it.

/** A request to one of the store's signed URLs refused: why, and what the caller is told. */
export class SignedUrlRefused extends Schema.TaggedError<SignedUrlRefused>()("SignedUrlRefused", {
  /**
   * `signature`: not a token of this store; `expired`; `form`: not the form the grant describes (fields, parts);
   * `type`: another content type; `too_large` / `too_small`: the file outside the granted size range.
   */
  reason: Schema.Literals(["signature", "expired", "form", "type", "too_large", "too_small"]),
  detail: Schema.String,
}) {
  override get message() {
    return `${this.reason}: ${this.detail}`
  }
}

/** What an upload token allows: one file under `key`, of `contentType`, `min`..`max` bytes, until `exp` (seconds). */
const PostGrant = Schema.Struct({
  op: Schema.Literal("post"),
  key: Schema.String,
  contentType: Schema.String,
  min: Schema.Int,
  max: Schema.Int,
  exp: Schema.Int,
})

/** What a download token allows: reading `key` until `exp` (Unix seconds). */
const GetGrant = Schema.Struct({ op: Schema.Literal("get"), key: Schema.String, exp: Schema.Int })

/** An upload's grant. */
export type PostGrant = typeof PostGrant.Type

/** A download's grant. */
export type GetGrant = typeof GetGrant.Type

const Grant = Schema.Union([PostGrant, GetGrant])
const decodeGrant = Schema.decodeUnknownOption(Schema.fromJsonString(Grant))

// Domain separation: a signature made with this key for anything else never verifies as a token.
const CONTEXT = "platform.blob-url.v1:"

const mac = (secret: Redacted.Redacted<string>, payload: string) =>
  createHmac("sha256", Redacted.value(secret))
    .update(CONTEXT + payload)
    .digest()

/** A token for `grant`: its JSON (base64url) and the HMAC-SHA256 of it under `secret`, joined by a dot. */
export const sign = (secret: Redacted.Redacted<string>, grant: PostGrant | GetGrant): string => {
  const payload = Buffer.from(JSON.stringify(grant)).toString("base64url")
  return `${payload}.${mac(secret, payload).toString("base64url")}`
}

/** The grant a token carries, once its signature and expiry are checked, if it is of the kind `op` names. */
export const verify = <Op extends "post" | "get">(
  secret: Redacted.Redacted<string>,
  token: string,
  op: Op,
  nowMillis: number,
): Effect.Effect<Extract<PostGrant | GetGrant, { op: Op }>, SignedUrlRefused> => {
  const dot = token.lastIndexOf(".")
  const payload = token.slice(0, Math.max(dot, 0))
  const given = Buffer.from(token.slice(dot + 1), "base64url")
  const expected = mac(secret, payload)
  if (dot <= 0 || given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return Effect.fail(new SignedUrlRefused({ reason: "signature", detail: "the URL is not valid" }))
  }
  const grant = decodeGrant(Buffer.from(payload, "base64url").toString("utf8"))
  if (Option.isNone(grant) || grant.value.op !== op) {
    return Effect.fail(new SignedUrlRefused({ reason: "signature", detail: `the URL is not a ${op} URL` }))
  }
  if (grant.value.exp * 1000 <= nowMillis) {
    return Effect.fail(new SignedUrlRefused({ reason: "expired", detail: "the URL has expired" }))
  }
  return Effect.succeed(grant.value as Extract<PostGrant | GetGrant, { op: Op }>)
}

/**
 * The multipart limits an upload route applies to its form besides the file's size: a few short fields (the key is at
 * most 1 KiB), as S3 bounds its POST forms.
 */
export const FORM_LIMITS = { maxParts: 16, maxFieldSize: 8 * 1024 } as const

// The form's fields the grant fixes, as `presignPost` hands them out; S3 refuses fields its policy does not name.
const KEY_FIELD = "key"
const TYPE_FIELD = "content-type"

/** The fields of an upload form for `grant` (sent before the file, as to S3). */
export const formFields = (grant: PostGrant): Readonly<Record<string, string>> => ({
  key: grant.key,
  "Content-Type": grant.contentType,
})

const refuse = (reason: SignedUrlRefused["reason"], detail: string) => new SignedUrlRefused({ reason, detail })

const fromMultipart = (error: Multipart.MultipartError) =>
  error.reason._tag === "FileTooLarge" || error.reason._tag === "BodyTooLarge"
    ? refuse("too_large", "the upload is larger than the route accepts")
    : refuse("form", `the form could not be read (${error.reason._tag})`)

/**
 * Reads an upload form as S3's POST Object does, against its grant: the fields first (exactly `key` and
 * `Content-Type`, each once, with the granted values; field names are case-insensitive), then one file part named
 * `file`, whose bytes go to `store` as they arrive. The stream `store` gets fails as soon as more than `max` bytes came
 * (nothing more is read) and, at its end, when fewer than `min` did; so `store` keeps only a file within the range.
 * What follows the file is not read, as S3 ignores it. Returns the file's size.
 */
export const receiveForm = <E>(
  grant: PostGrant,
  parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>,
  store: (file: Stream.Stream<Uint8Array, SignedUrlRefused>) => Effect.Effect<void, E>,
): Effect.Effect<number, SignedUrlRefused | E> =>
  Effect.suspend(() => {
    const fields = new Map<string, string>()
    let size: number | undefined
    const take = (part: Multipart.Part): Effect.Effect<void, SignedUrlRefused | E> => {
      if (part._tag === "Field") {
        const name = part.key.toLowerCase()
        if (name !== KEY_FIELD && name !== TYPE_FIELD) {
          return Effect.fail(refuse("form", `the form has a field the upload does not allow: ${part.key.slice(0, 64)}`))
        }
        if (fields.has(name)) return Effect.fail(refuse("form", `the form has ${part.key} twice`))
        fields.set(name, part.value)
        return Effect.void
      }
      if (part.key !== "file") return Effect.fail(refuse("form", "the file must be the part named file"))
      if (fields.get(KEY_FIELD) !== grant.key)
        return Effect.fail(refuse("form", "the key field is not the granted key"))
      const type = fields.get(TYPE_FIELD)
      if (type === undefined) return Effect.fail(refuse("form", "the form has no Content-Type field"))
      if (type !== grant.contentType) {
        return Effect.fail(refuse("type", `the upload must be ${grant.contentType}, not ${type.slice(0, 100)}`))
      }
      let count = 0
      const counted = part.content.pipe(
        Stream.mapError(fromMultipart),
        Stream.mapEffect((chunk) => {
          count += chunk.byteLength
          return count > grant.max
            ? Effect.fail(refuse("too_large", `the file is larger than ${grant.max} bytes`))
            : Effect.succeed(chunk)
        }),
        Stream.concat(
          Stream.suspend(() =>
            count < grant.min
              ? Stream.fail(refuse("too_small", `the file is smaller than ${grant.min} bytes`))
              : Stream.empty,
          ),
        ),
      )
      return Effect.map(store(counted), () => {
        size = count
      })
    }
    // The file is the form's last part: what follows is not read (S3 ignores it too).
    const untilFile = Stream.takeUntil(Stream.mapError(parts, fromMultipart), (part) => part._tag === "File")
    return Stream.runForEach(untilFile, take).pipe(
      Effect.flatMap(() =>
        size === undefined ? Effect.fail(refuse("form", "the form has no file")) : Effect.succeed(size),
      ),
    )
  })
