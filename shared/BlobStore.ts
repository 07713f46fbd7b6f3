import { createHash, randomBytes, randomUUID } from "node:crypto"
import { createReadStream } from "node:fs"
import { type FileHandle, mkdir, open, readFile, rename, rm, rmdir, stat, unlink, writeFile } from "node:fs/promises"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3"
import { createPresignedPost } from "@aws-sdk/s3-presigned-post"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { Config, Context, Duration, Effect, Layer, Metric, Option, Redacted, Schema, Stream } from "effect"
import type * as Multipart from "effect/http/Multipart"
import * as BlobForms from "./BlobForms.ts"
import { register } from "./Health.ts"

export { SignedUrlRefused } from "./BlobForms.ts"

/** A storage operation failed (S3 unreachable, access denied, disk full); carries the underlying error as cause. */
export class BlobStoreError extends Schema.TaggedError<BlobStoreError>()("BlobStoreError", {
  message: Schema.String,
  cause: Schema.Defect(),
}) {}

/** A key refused before reaching storage: empty, > 1024 bytes, leading `/`, `.`/`..`/empty segment, control char. */
export class InvalidKey extends Schema.TaggedError<InvalidKey>()("InvalidKey", {
  key: Schema.String,
  reason: Schema.String,
}) {
  override get message() {
    return `invalid blob key ${JSON.stringify(this.key)}: ${this.reason}`
  }
}

/** The store cannot presign this operation (the filesystem store has no server to accept uploads). */
export class PresignUnsupported extends Schema.TaggedError<PresignUnsupported>()("PresignUnsupported", {
  operation: Schema.Literals(["get", "put", "post"]),
  backend: Schema.String,
}) {
  override get message() {
    return `the ${this.backend} blob store cannot presign ${this.operation} URLs`
  }
}

/** A stored object's bytes and content type. */
export interface BlobContent {
  readonly body: Uint8Array
  readonly contentType?: string | undefined
}

/** A stored object's metadata; `etag` is quoted, as in HTTP. */
export interface BlobInfo {
  readonly size: number
  readonly contentType?: string | undefined
  readonly etag?: string | undefined
}

/** Options of `BlobStore.put`; the content type defaults to `application/octet-stream`. */
export interface PutOptions {
  readonly contentType?: string
}

/** Options of `BlobStore.presignPut`; with a content type the uploader must send that exact `Content-Type`. */
export interface PresignPutOptions {
  readonly expiresInSeconds: number
  readonly contentType?: string
}

/**
 * Options of `BlobStore.presignPost`: the one content type the upload may have, the size range its file must fall in
 * (bytes, inclusive) and how long the grant lasts (at most `MAX_POST_SECONDS`: an upload grant is short-lived).
 */
export interface PresignPostOptions {
  readonly contentType: string
  readonly minBytes: number
  readonly maxBytes: number
  readonly expiresInSeconds: number
}

/**
 * An HTML-form upload (S3's POST Object): POST `url` as `multipart/form-data` with every one of `fields`, then the
 * file as the last part, named `file`. The grant ends at `expiresAt`.
 */
export interface PresignedPost {
  readonly url: string
  readonly fields: Readonly<Record<string, string>>
  readonly expiresAt: Date
}

/** Options of `BlobStore.presignGet`. */
export interface PresignGetOptions {
  readonly expiresInSeconds: number
}

/** Settings of the S3 store; without `endpoint` it talks to AWS, credentials come from the default chain. */
export interface S3BlobStoreOptions {
  readonly bucket: string
  /** Default: the SDK's region chain (AWS_REGION), or `us-east-1` with a custom endpoint. */
  readonly region?: string
  /** A custom endpoint (moto, LocalStack, MinIO); switches checksums to "when required". */
  readonly endpoint?: string
  /** Default: true when `endpoint` is set, false otherwise. */
  readonly forcePathStyle?: boolean
}

/** Settings of the filesystem store; `publicBaseUrl` is where something serves `<root>/objects` over HTTP. */
export interface FileSystemBlobStoreOptions {
  readonly root: string
  readonly publicBaseUrl?: string
  /** Where a function serves this store's signed URLs; without it the store presigns no uploads. */
  readonly signedUrls?: SignedUrls
}

/**
 * Where a function serves the filesystem store's signed URLs, `<baseUrl>/<token>` (POST: an upload form, GET: a
 * download; it hands the requests to `receivePost` and `openSigned`), and the key that signs their tokens.
 */
export interface SignedUrls {
  readonly baseUrl: string
  readonly secret: Redacted.Redacted<string>
}

/** An upload a signed URL took: the key, the file's size and the content type it is stored with. */
export interface ReceivedUpload {
  readonly key: string
  readonly size: number
  readonly contentType: string
}

/** An object a signed download URL names: its metadata and its bytes as they are read. */
export interface SignedDownload extends BlobInfo {
  readonly key: string
  readonly body: Stream.Stream<Uint8Array, BlobStoreError>
}

type Failure = BlobStoreError | InvalidKey
type SignedUrlRefused = BlobForms.SignedUrlRefused

/** Object storage for a service: S3 in production, a directory in the embedded default. */
export class BlobStore extends Context.Service<
  BlobStore,
  {
    put(key: string, body: Uint8Array | string, options?: PutOptions): Effect.Effect<void, Failure>
    /** The object, or none when no object has that key. */
    get(key: string): Effect.Effect<Option.Option<BlobContent>, Failure>
    /** The object's metadata, or none when no object has that key. */
    head(key: string): Effect.Effect<Option.Option<BlobInfo>, Failure>
    /** Removes the object; removing a missing key succeeds. */
    delete(key: string): Effect.Effect<void, Failure>
    /** A URL a client can PUT the object's bytes to until it expires. */
    presignPut(key: string, options: PresignPutOptions): Effect.Effect<string, Failure | PresignUnsupported>
    /** A URL a client can GET the object from until it expires. */
    presignGet(key: string, options: PresignGetOptions): Effect.Effect<string, Failure | PresignUnsupported>
    /**
     * A form upload of exactly this key whose signed policy pins the content type and the file's size range: storage
     * itself refuses anything else (S3; see README on emulators that do not check the policy).
     */
    presignPost(key: string, options: PresignPostOptions): Effect.Effect<PresignedPost, Failure | PresignUnsupported>
    /**
     * Takes an upload form sent to one of this store's own signed URLs (the filesystem store's `presignPost`; `token`
     * is the URL's last segment): only as its grant allows (`BlobForms.receiveForm`), streamed to a temporary file and
     * moved into place whole. A store that serves no signed URLs (S3 serves its own) refuses every token.
     */
    receivePost(
      token: string,
      parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>,
    ): Effect.Effect<ReceivedUpload, SignedUrlRefused | BlobStoreError>
    /** The object one of this store's own signed download URLs names (none when it is gone), as `receivePost`. */
    openSigned(token: string): Effect.Effect<Option.Option<SignedDownload>, SignedUrlRefused | BlobStoreError>
  }
>()("shared/BlobStore") {
  /** The S3 store: registers the "s3" readiness check (HeadBucket) and destroys the client with the layer. */
  static readonly layerS3 = (options: S3BlobStoreOptions) =>
    Layer.effect(
      BlobStore,
      Effect.gen(function* () {
        const client = yield* Effect.acquireRelease(
          Effect.sync(() => makeS3Client(options)),
          (client) => Effect.sync(() => client.destroy()),
        )
        const backend = s3Backend(client, options.bucket)
        yield* register("s3", backend.headBucket)
        return make("s3", { "aws.s3.bucket": options.bucket }, backend)
      }),
    )

  /**
   * The embedded-default store: objects under `<root>/objects/<key>`, content type and ETag under
   * `<root>/meta/<key>.json`, writes atomic (temp file + rename). With `signedUrls`, `presignPost` and `presignGet`
   * give signed, expiring URLs of the function that serves them (`receivePost`, `openSigned`); `presignGet` gives
   * `publicBaseUrl/<key>` when that is set, and without either a `file://` URL (development only). `presignPut` fails
   * with `PresignUnsupported`, as `presignPost` does without `signedUrls`. Limits: a key cannot be both an object and a
   * "folder" of others (`a` and `a/b`), and each path segment is at most 250 bytes (`InvalidKey` otherwise).
   */
  static readonly layerFileSystem = (options: FileSystemBlobStoreOptions) =>
    Layer.effect(
      BlobStore,
      Effect.gen(function* () {
        const root = Path.resolve(options.root)
        yield* fsAttempt(`creating ${root}`, () =>
          Promise.all(["objects", "meta", "tmp"].map((dir) => mkdir(Path.join(root, dir), { recursive: true }))),
        )
        return make("filesystem", { "blobstore.root": root }, fileSystemBackend(root, options))
      }),
    )

  /**
   * The store its keys (`config`, validated at start with a function's others) name: S3 when `S3_ENDPOINT` or
   * `S3_BUCKET` is set (then `S3_BUCKET` is required), else the filesystem under `BLOB_DIR` (default
   * `$DATA_DIR/blobs`, i.e. `.data/blobs`) with `BLOB_PUBLIC_BASE_URL` as its public base URL and, when
   * `signedUrlBase` is given (where the function serves them), signed URLs keyed by `BLOB_SIGNING_KEY` (unset: a random
   * key of the process, so its URLs end with it).
   */
  static readonly layerFrom = (config: BlobStoreConfig, options: { readonly signedUrlBase?: string } = {}) => {
    const given = <A, K extends string>(value: Option.Option<A>, key: K) =>
      Option.match(value, { onNone: () => ({}), onSome: (v) => ({ [key]: v }) as { [P in K]: A } })
    if (Option.isSome(config.s3Endpoint) || Option.isSome(config.s3Bucket)) {
      if (Option.isNone(config.s3Bucket)) {
        return Layer.effect(
          BlobStore,
          Effect.fail(new BlobStoreError({ message: "S3_BUCKET: required when S3_ENDPOINT is set", cause: null })),
        )
      }
      return BlobStore.layerS3({
        bucket: config.s3Bucket.value,
        ...given(config.s3Endpoint, "endpoint"),
        ...given(config.s3Region, "region"),
        ...given(config.s3ForcePathStyle, "forcePathStyle"),
      })
    }
    return BlobStore.layerFileSystem({
      root: Option.getOrElse(config.blobDir, () => Path.join(config.dataDir, "blobs")),
      ...given(config.blobPublicBaseUrl, "publicBaseUrl"),
      ...(options.signedUrlBase === undefined
        ? {}
        : {
            signedUrls: {
              baseUrl: options.signedUrlBase,
              secret: Option.getOrElse(config.blobSigningKey, () =>
                Redacted.make(randomBytes(32).toString("base64url")),
              ),
            },
          }),
    })
  }

  /** `layerFrom` with its keys read from the environment, without signed URLs. */
  static readonly layer = Layer.unwrap(
    Effect.gen(function* () {
      return BlobStore.layerFrom(yield* Config.all(config()))
    }),
  )
}

/** The blob store's keys, to spread into a function's configuration (`Config.load` checks them with the others). */
export function config() {
  return {
    /** S3 (or an S3-compatible server) when this or `S3_BUCKET` is set. */
    s3Endpoint: Config.option(Config.String("S3_ENDPOINT")),
    s3Bucket: Config.option(Config.String("S3_BUCKET")),
    s3Region: Config.option(Config.String("S3_REGION")),
    /** Default: true with `S3_ENDPOINT` (emulators), false otherwise. */
    s3ForcePathStyle: Config.option(Config.Boolean("S3_FORCE_PATH_STYLE")),
    /** The embedded store's folder; default `$DATA_DIR/blobs`. */
    blobDir: Config.option(Config.String("BLOB_DIR")),
    dataDir: Config.String("DATA_DIR").pipe(Config.withDefault(".data")),
    /** Where something serves the embedded store's folder over HTTP (development only). */
    blobPublicBaseUrl: Config.option(Config.String("BLOB_PUBLIC_BASE_URL")),
    /** The key of the embedded store's signed URLs; at least 32 characters. */
    blobSigningKey: Config.option(
      Config.schema(
        Schema.Redacted(Schema.String.check(Schema.isMinLength(32, { message: "Expected at least 32 characters" }))),
        "BLOB_SIGNING_KEY",
      ),
    ),
  }
}

/** The blob store's keys as loaded. */
export type BlobStoreConfig = {
  readonly [K in keyof ReturnType<typeof config>]: Config.Success<ReturnType<typeof config>[K]>
}

const MAX_KEY_BYTES = 1024
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600

/** The longest a presigned POST may last: 15 minutes. */
export const MAX_POST_SECONDS = 900

/** The largest file one S3 POST Object may carry (5 GiB). */
export const MAX_POST_BYTES = 5 * 1024 ** 3

/** Checks a key against the rules every store applies (see `InvalidKey`); returns it unchanged. */
export const validateKey = (key: string): Effect.Effect<string, InvalidKey> => {
  const reason = keyProblem(key)
  return reason === undefined ? Effect.succeed(key) : Effect.fail(new InvalidKey({ key: key.slice(0, 200), reason }))
}

const keyProblem = (key: string): string | undefined => {
  if (key.length === 0) return "empty"
  if (Buffer.byteLength(key, "utf8") > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`
  if (key.startsWith("/")) return "leading slash"
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(key)) return "control character"
  for (const segment of key.split("/")) {
    if (segment === "") return "empty path segment"
    if (segment === "." || segment === "..") return `"${segment}" path segment`
  }
  return undefined
}

// What an implementation provides, for keys already validated.
interface Backend {
  put(key: string, body: Uint8Array, contentType: string): Effect.Effect<void, Failure>
  get(key: string): Effect.Effect<Option.Option<BlobContent>, Failure>
  head(key: string): Effect.Effect<Option.Option<BlobInfo>, Failure>
  delete(key: string): Effect.Effect<void, Failure>
  presignPut(key: string, expiresIn: number, contentType?: string): Effect.Effect<string, Failure | PresignUnsupported>
  presignGet(key: string, expiresIn: number): Effect.Effect<string, Failure | PresignUnsupported>
  presignPost(key: string, post: CheckedPost): Effect.Effect<PresignedPost, Failure | PresignUnsupported>
  receivePost(
    token: string,
    parts: Stream.Stream<Multipart.Part, Multipart.MultipartError>,
  ): Effect.Effect<ReceivedUpload, SignedUrlRefused | BlobStoreError>
  openSigned(token: string): Effect.Effect<Option.Option<SignedDownload>, SignedUrlRefused | BlobStoreError>
}

// A presigned POST's options once checked, with the instant it ends (whole seconds: the policy has no fractions).
interface CheckedPost {
  readonly contentType: string
  readonly minBytes: number
  readonly maxBytes: number
  readonly expiresInSeconds: number
  readonly expiresAt: Date
}

const duration = Metric.histogram("blobstore_operation_duration_seconds", {
  description: "Blob store operation duration",
  boundaries: Metric.boundariesFromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]),
})

const make = (backend: string, attributes: Record<string, string>, impl: Backend) => {
  const span = { kind: "client", attributes: { "blobstore.backend": backend, ...attributes } } as const

  const op =
    <Args extends ReadonlyArray<unknown>, A, E>(
      operation: string,
      f: (key: string, ...args: Args) => Effect.Effect<A, E>,
    ): ((key: string, ...args: Args) => Effect.Effect<A, E | InvalidKey>) =>
    (key, ...args) =>
      Effect.gen(function* () {
        yield* Effect.annotateCurrentSpan("blobstore.key", key.slice(0, 200))
        yield* validateKey(key)
        const [elapsed, result] = yield* Effect.timed(f(key, ...args))
        yield* Metric.update(Metric.withAttributes(duration, { backend, operation }), Duration.toSeconds(elapsed))
        return result
      }).pipe(Effect.withSpan(`BlobStore.${operation}`, span))

  // The operations named by a token rather than a key: the key is the token's, checked by its signature.
  const timed = <A, E>(operation: string, effect: Effect.Effect<A, E>) =>
    Effect.timed(effect).pipe(
      Effect.tap(([elapsed]) =>
        Metric.update(Metric.withAttributes(duration, { backend, operation }), Duration.toSeconds(elapsed)),
      ),
      Effect.map(([, result]) => result),
      Effect.withSpan(`BlobStore.${operation}`, span),
    )

  const expiry = (seconds: number) =>
    Number.isInteger(seconds) && seconds > 0 && seconds <= MAX_PRESIGN_SECONDS
      ? Effect.succeed(seconds)
      : Effect.fail(
          new BlobStoreError({
            message: `expiresInSeconds must be an integer in 1..${MAX_PRESIGN_SECONDS}, got ${seconds}`,
            cause: null,
          }),
        )

  const postGrant = (options: PresignPostOptions) =>
    Effect.suspend(() => {
      const problem = postProblem(options)
      if (problem !== undefined) return Effect.fail(new BlobStoreError({ message: problem, cause: null }))
      // Rounded down to the second, as the policy's expiration is: never later than the grant really ends.
      const end = Math.floor((Date.now() + options.expiresInSeconds * 1000) / 1000) * 1000
      return Effect.succeed<CheckedPost>({ ...options, expiresAt: new Date(end) })
    })

  return BlobStore.of({
    put: op("put", (key, body: Uint8Array | string, options?: PutOptions) =>
      impl.put(
        key,
        typeof body === "string" ? new TextEncoder().encode(body) : body,
        options?.contentType ?? "application/octet-stream",
      ),
    ),
    get: op("get", impl.get),
    head: op("head", impl.head),
    delete: op("delete", impl.delete),
    presignPut: op("presignPut", (key, options: PresignPutOptions) =>
      Effect.flatMap(expiry(options.expiresInSeconds), (seconds) => impl.presignPut(key, seconds, options.contentType)),
    ),
    presignGet: op("presignGet", (key, options: PresignGetOptions) =>
      Effect.flatMap(expiry(options.expiresInSeconds), (seconds) => impl.presignGet(key, seconds)),
    ),
    presignPost: op("presignPost", (key, options: PresignPostOptions) =>
      Effect.flatMap(postGrant(options), (grant) => impl.presignPost(key, grant)),
    ),
    receivePost: (token, parts) => timed("receivePost", impl.receivePost(token, parts)),
    openSigned: (token) => timed("openSigned", impl.openSigned(token)),
  })
}

// A content type is one header value: printable ASCII, no line breaks (it is signed into a policy and sent back as-is).
const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/

const postProblem = (options: PresignPostOptions): string | undefined => {
  const { contentType, minBytes, maxBytes, expiresInSeconds } = options
  if (!CONTENT_TYPE.test(contentType)) return "contentType must be 1..255 printable ASCII characters"
  if (!Number.isSafeInteger(minBytes) || minBytes < 0) return `minBytes must be an integer >= 0, got ${minBytes}`
  if (!Number.isSafeInteger(maxBytes) || maxBytes < minBytes || maxBytes > MAX_POST_BYTES) {
    return `maxBytes must be an integer in minBytes..${MAX_POST_BYTES}, got ${maxBytes}`
  }
  if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > MAX_POST_SECONDS) {
    return `expiresInSeconds must be an integer in 1..${MAX_POST_SECONDS}, got ${expiresInSeconds}`
  }
  return undefined
}

const errorText = (cause: unknown) => (cause instanceof Error ? cause.message || cause.name : String(cause))

const makeS3Client = (options: S3BlobStoreOptions) => {
  const custom = options.endpoint !== undefined
  return new S3Client({
    ...(options.region !== undefined ? { region: options.region } : custom ? { region: "us-east-1" } : {}),
    ...(custom
      ? {
          endpoint: options.endpoint,
          requestChecksumCalculation: "WHEN_REQUIRED",
          responseChecksumValidation: "WHEN_REQUIRED",
        }
      : {}),
    forcePathStyle: options.forcePathStyle ?? custom,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  })
}

const isNotFound = (cause: unknown) => {
  const name = (cause as { name?: unknown } | null)?.name
  return name === "NoSuchKey" || name === "NotFound"
}

const s3Backend = (client: S3Client, bucket: string) => {
  const attempt = <A>(what: string, f: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({
      try: f,
      catch: (cause) => new BlobStoreError({ message: `S3 ${what}: ${errorText(cause)}`, cause }),
    })
  // NoSuchKey (GetObject) and NotFound (HeadObject) become none; anything else stays an error.
  const optional = <A>(what: string, f: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({ try: f, catch: (cause) => cause }).pipe(
      Effect.map(Option.some),
      Effect.catch((cause) =>
        isNotFound(cause)
          ? Effect.succeed(Option.none<A>())
          : Effect.fail(new BlobStoreError({ message: `S3 ${what}: ${errorText(cause)}`, cause })),
      ),
    )

  return {
    headBucket: attempt(`HeadBucket ${bucket}`, (abortSignal) =>
      client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal }),
    ),
    put: (key, body, contentType) =>
      Effect.asVoid(
        attempt("PutObject", (abortSignal) =>
          client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }), {
            abortSignal,
          }),
        ),
      ),
    get: (key) =>
      optional("GetObject", async (abortSignal) => {
        const output = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal })
        const body = output.Body ? await output.Body.transformToByteArray() : new Uint8Array()
        return { body, contentType: output.ContentType }
      }),
    head: (key) =>
      optional("HeadObject", (abortSignal) =>
        client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }),
      ).pipe(
        Effect.map(
          Option.map((output) => ({
            size: output.ContentLength ?? 0,
            contentType: output.ContentType,
            etag: output.ETag,
          })),
        ),
      ),
    delete: (key) =>
      Effect.asVoid(
        attempt("DeleteObject", (abortSignal) =>
          client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), { abortSignal }),
        ),
      ),
    presignPut: (key, expiresIn, contentType) =>
      attempt("presigning PutObject", () =>
        getSignedUrl(client, new PutObjectCommand({ Bucket: bucket, Key: key, ContentType: contentType }), {
          expiresIn,
          ...(contentType !== undefined ? { signableHeaders: new Set(["content-type"]) } : {}),
        }),
      ),
    presignGet: (key, expiresIn) =>
      attempt("presigning GetObject", () =>
        getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn }),
      ),
    // The policy (signed with the client's credentials) pins the key, the Content-Type field and the file's size; the
    // field is sent back in `fields`, so the uploader cannot forget it and S3 stores it as the object's type.
    presignPost: (key, grant) =>
      attempt("presigning POST Object", () =>
        createPresignedPost(client, {
          Bucket: bucket,
          Key: key,
          Fields: { "Content-Type": grant.contentType },
          Conditions: [["content-length-range", grant.minBytes, grant.maxBytes]],
          Expires: grant.expiresInSeconds,
        }),
      ).pipe(Effect.map(({ url, fields }) => ({ url, fields, expiresAt: grant.expiresAt }))),
    // S3 takes its uploads and serves its downloads itself.
    receivePost: () => noSignedUrls,
    openSigned: () => noSignedUrls,
  } satisfies Backend & { headBucket: Effect.Effect<unknown, BlobStoreError> }
}

const noSignedUrls = Effect.fail(
  new BlobForms.SignedUrlRefused({ reason: "signature", detail: "this store serves no signed URLs" }),
)

const fsAttempt = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause) => new BlobStoreError({ message: `filesystem ${what}: ${errorText(cause)}`, cause }),
  })

const code = (cause: unknown) => (cause as { code?: unknown } | null)?.code

// A missing file, a file where a folder is expected (ENOTDIR) or a folder where a file is expected (EISDIR).
const ABSENT = new Set(["ENOENT", "ENOTDIR", "EISDIR"])

const absentAsUndefined = <A>(promise: Promise<A>): Promise<A | undefined> =>
  promise.catch((cause) => {
    if (ABSENT.has(code(cause) as string)) return undefined
    throw cause
  })

interface Meta {
  readonly contentType?: string
  readonly etag?: string
}

// NAME_MAX is 255 bytes on common filesystems; metadata files add ".json".
const MAX_SEGMENT_BYTES = 250

const fileSystemBackend = (root: string, options: Omit<FileSystemBlobStoreOptions, "root">): Backend => {
  const { publicBaseUrl, signedUrls } = options
  const objects = Path.join(root, "objects")
  const metas = Path.join(root, "meta")
  const tmp = Path.join(root, "tmp")

  // Validated keys cannot escape, but the check costs nothing and guards the filesystem.
  const within = (base: string, key: string, suffix = "") => {
    if (key.split("/").some((segment) => Buffer.byteLength(segment) > MAX_SEGMENT_BYTES)) {
      return Effect.fail(
        new InvalidKey({ key, reason: `path segment longer than ${MAX_SEGMENT_BYTES} bytes (filesystem store)` }),
      )
    }
    const path = Path.resolve(base, `${key}${suffix}`)
    return path.startsWith(base + Path.sep)
      ? Effect.succeed(path)
      : Effect.fail(new InvalidKey({ key, reason: "escapes the store root" }))
  }
  const paths = (key: string) => Effect.all([within(objects, key), within(metas, key, ".json")])

  const readMeta = async (path: string): Promise<Meta> => {
    const text = await absentAsUndefined(readFile(path, "utf8"))
    return text === undefined ? {} : (JSON.parse(text) as Meta)
  }

  // Moves a complete temp file into place with its metadata (written beside it), data first.
  const install = async (tmpData: string, data: string, meta: string, written: Meta) => {
    const tmpMeta = `${tmpData}.json`
    await writeFile(tmpMeta, JSON.stringify(written))
    await place(tmpData, data)
    await place(tmpMeta, meta)
  }

  const removeTemp = (tmpData: string) =>
    Promise.all([rm(tmpData, { force: true }), rm(`${tmpData}.json`, { force: true })])

  // Streams an upload's file to a temp file, then installs it: a refused or failed upload leaves nothing behind.
  const putStream = (key: string, file: Stream.Stream<Uint8Array, SignedUrlRefused>, contentType: string) =>
    Effect.flatMap(keyPaths(key), ([data, meta]) =>
      Effect.acquireUseRelease(
        fsAttempt(`creating a temp file for ${key}`, async () => {
          const tmpData = Path.join(tmp, randomUUID())
          return { tmpData, handle: await open(tmpData, "wx") }
        }),
        ({ tmpData, handle }) => {
          const hash = createHash("md5")
          return Stream.runForEach(file, (chunk) =>
            fsAttempt(`writing ${key}`, () => {
              hash.update(chunk)
              return handle.writeFile(chunk)
            }),
          ).pipe(
            Effect.andThen(
              fsAttempt(`writing ${key}`, async () => {
                await handle.close()
                await install(tmpData, data, meta, { contentType, etag: `"${hash.digest("hex")}"` })
              }),
            ),
          )
        },
        ({ tmpData, handle }) => Effect.promise(() => closeQuietly(handle).then(() => removeTemp(tmpData))),
      ),
    )

  // A signed token's key passed the key rules when it was signed; one the filesystem cannot hold is the store's fault.
  const keyPaths = (key: string) =>
    paths(key).pipe(Effect.mapError((error) => new BlobStoreError({ message: error.message, cause: error })))

  const signedUrl = (urls: SignedUrls, grant: BlobForms.PostGrant | BlobForms.GetGrant) =>
    `${urls.baseUrl.replace(/\/+$/, "")}/${BlobForms.sign(urls.secret, grant)}`

  // Moves a temp file into place, recreating the folder if a concurrent delete pruned it.
  const place = async (from: string, to: string) => {
    await mkdir(Path.dirname(to), { recursive: true })
    try {
      await rename(from, to)
    } catch (cause) {
      if (code(cause) !== "ENOENT") throw cause
      await mkdir(Path.dirname(to), { recursive: true })
      await rename(from, to)
    }
  }

  // Removes folders left empty by a delete, up to (not including) the base.
  const prune = async (base: string, path: string) => {
    for (let dir = Path.dirname(path); dir.startsWith(base + Path.sep); dir = Path.dirname(dir)) {
      const removed = await rmdir(dir).then(
        () => true,
        () => false,
      )
      if (!removed) return
    }
  }

  return {
    put: (key, body, contentType) =>
      Effect.flatMap(paths(key), ([data, meta]) =>
        fsAttempt(`writing ${key}`, async () => {
          const tmpData = Path.join(tmp, randomUUID())
          const etag = `"${createHash("md5").update(body).digest("hex")}"`
          try {
            await writeFile(tmpData, body)
            await install(tmpData, data, meta, { contentType, etag })
          } finally {
            await removeTemp(tmpData)
          }
        }),
      ),
    get: (key) =>
      Effect.flatMap(paths(key), ([data, meta]) =>
        fsAttempt(`reading ${key}`, async () => {
          const bytes = await absentAsUndefined(readFile(data))
          if (bytes === undefined) return Option.none()
          const { contentType } = await readMeta(meta)
          return Option.some({ body: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), contentType })
        }),
      ),
    head: (key) =>
      Effect.flatMap(paths(key), ([data, meta]) =>
        fsAttempt(`reading ${key}`, async () => {
          const stats = await absentAsUndefined(stat(data))
          if (stats === undefined || !stats.isFile()) return Option.none()
          const { contentType, etag } = await readMeta(meta)
          return Option.some({ size: stats.size, contentType, etag })
        }),
      ),
    delete: (key) =>
      Effect.flatMap(paths(key), ([data, meta]) =>
        fsAttempt(`deleting ${key}`, async () => {
          await absentAsUndefined(unlink(data))
          await absentAsUndefined(unlink(meta))
          await prune(objects, data)
          await prune(metas, meta)
        }),
      ),
    presignPut: () => Effect.fail(new PresignUnsupported({ operation: "put", backend: "filesystem" })),
    presignPost: (key, post) =>
      signedUrls === undefined
        ? Effect.fail(new PresignUnsupported({ operation: "post", backend: "filesystem" }))
        : Effect.map(paths(key), () => {
            const grant: BlobForms.PostGrant = {
              op: "post",
              key,
              contentType: post.contentType,
              min: post.minBytes,
              max: post.maxBytes,
              exp: post.expiresAt.getTime() / 1000,
            }
            return { url: signedUrl(signedUrls, grant), fields: BlobForms.formFields(grant), expiresAt: post.expiresAt }
          }),
    presignGet: (key, expiresIn) =>
      publicBaseUrl !== undefined
        ? Effect.succeed(`${publicBaseUrl.replace(/\/+$/, "")}/${key.split("/").map(encodeURIComponent).join("/")}`)
        : signedUrls !== undefined
          ? Effect.map(paths(key), () =>
              signedUrl(signedUrls, { op: "get", key, exp: Math.floor(Date.now() / 1000) + expiresIn }),
            )
          : Effect.map(within(objects, key), (path) => pathToFileURL(path).href),
    receivePost: (token, parts) =>
      signedUrls === undefined
        ? noSignedUrls
        : Effect.gen(function* () {
            const grant = yield* BlobForms.verify(signedUrls.secret, token, "post", Date.now())
            const size = yield* BlobForms.receiveForm(grant, parts, (file) =>
              putStream(grant.key, file, grant.contentType),
            )
            return { key: grant.key, size, contentType: grant.contentType }
          }),
    openSigned: (token) =>
      signedUrls === undefined
        ? noSignedUrls
        : Effect.gen(function* () {
            const { key } = yield* BlobForms.verify(signedUrls.secret, token, "get", Date.now())
            const [data, meta] = yield* keyPaths(key)
            return yield* fsAttempt(`reading ${key}`, async () => {
              const stats = await absentAsUndefined(stat(data))
              if (stats === undefined || !stats.isFile()) return Option.none()
              const { contentType, etag } = await readMeta(meta)
              // Opened when the answer is sent; an object deleted in between ends the answer early.
              const body = Stream.suspend(() =>
                Stream.fromAsyncIterable(
                  createReadStream(data),
                  (cause) => new BlobStoreError({ message: `filesystem reading ${key}: ${errorText(cause)}`, cause }),
                ),
              ) as Stream.Stream<Uint8Array, BlobStoreError>
              return Option.some({ key, size: stats.size, contentType, etag, body })
            })
          }),
  }
}

const closeQuietly = (handle: FileHandle) => handle.close().catch(() => undefined)
