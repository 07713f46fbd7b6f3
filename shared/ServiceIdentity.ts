import { createHash, createPrivateKey, createPublicKey, type KeyObject, randomUUID } from "node:crypto"
import { Config, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from "jose"
import { makeLocal } from "./Cache.ts"
import * as Problem from "./Problem.ts"

/**
 * Service identity for internal calls (zero trust): every function holds its own Ed25519 key and signs a short-lived
 * JWT (`iss = sub = caller`, `aud = callee`, 60 s) that it sends with each gRPC call; the callee verifies the signature
 * against the caller's public key, its own name as audience and the lifetime, then serves the call only when the
 * caller is one of the functions that declare it as a dependency (the manifests' `dependsOn`).
 *
 * Why signed tokens and not mTLS: no certificate authority to run or rotate, the same check on any transport (gRPC,
 * HTTP, Lambda), a key per function (a compromised function can only ever be itself), and a verification costs
 * ≈ 0.1 ms against an already-parsed key. Confidentiality on the wire is the network's job (TLS at the mesh or
 * load balancer); identity does not depend on it.
 */

/** The algorithm of service tokens; nothing else is accepted. */
export const SERVICE_TOKEN_ALG = "EdDSA"
/** The JWT `typ` of a service token: an access token of a user can never be replayed as one. */
export const SERVICE_TOKEN_TYP = "svc+jwt"
/** How long a minted token is valid; a caller renews it at half its life. */
const LIFETIME_SECONDS = 60

// PKCS#8 DER of an Ed25519 private key is this prefix and the 32-byte seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex")

/** An Ed25519 private key from its 32-byte seed. */
const fromSeed = (seed: Buffer): KeyObject =>
  createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" })

/**
 * The development key of a function: derived from its name, so every process of `npm start` and the tests agree on
 * it without configuration. Public knowledge, hence never accepted in production (see `devKeysInUse`).
 */
export const devPrivateKey = (name: string): KeyObject =>
  fromSeed(createHash("sha256").update(`platform development service key/${name}`).digest())

/** A private key from `SERVICE_KEY`: base64 of its PKCS#8 DER, or PEM. */
export const parsePrivateKey = (text: string): KeyObject => {
  const key = text.includes("-----BEGIN")
    ? createPrivateKey(text)
    : createPrivateKey({ key: Buffer.from(text, "base64"), format: "der", type: "pkcs8" })
  if (key.asymmetricKeyType !== "ed25519") throw new Error("SERVICE_KEY must be an Ed25519 private key")
  return key
}

/** A public key from `SERVICE_PUBLIC_KEYS`: base64 of its SPKI DER, or PEM. */
export const parsePublicKey = (text: string): KeyObject => {
  const key = text.includes("-----BEGIN")
    ? createPublicKey(text)
    : createPublicKey({ key: Buffer.from(text, "base64"), format: "der", type: "spki" })
  if (key.asymmetricKeyType !== "ed25519") throw new Error("service public keys must be Ed25519 keys")
  return key
}

/** The base64 SPKI DER of a key's public half: the form `SERVICE_PUBLIC_KEYS` holds. */
export const publicKeyText = (key: KeyObject): string =>
  (key.type === "private" ? createPublicKey(key) : key).export({ format: "der", type: "spki" }).toString("base64")

/** The base64 PKCS#8 DER of a private key: the form `SERVICE_KEY` holds. */
export const privateKeyText = (key: KeyObject): string =>
  key.export({ format: "der", type: "pkcs8" }).toString("base64")

const PublicKeys = Schema.fromJsonString(Schema.Record(Schema.String, Schema.String))

/** Configuration keys of service identity (`Config.serviceIdentity()`). */
export const config = () => ({
  /** This function's Ed25519 private key (base64 PKCS#8 DER or PEM); unset outside production = the dev key. */
  serviceKey: Config.option(Config.Redacted("SERVICE_KEY")),
  /** JSON `{ "<function>": "<base64 SPKI DER>" }`: every function's public key (public; one map for all). */
  servicePublicKeys: Config.option(Config.schema(PublicKeys, "SERVICE_PUBLIC_KEYS")),
})

/** What `ServiceIdentity.fromConfig` reads. */
export interface ServiceIdentityConfig {
  readonly serviceKey: Option.Option<Redacted.Redacted<string>>
  readonly servicePublicKeys: Option.Option<Readonly<Record<string, string>>>
}

/** The development defaults a configuration still uses (production refuses to start with any). */
export const devKeysInUse = (c: ServiceIdentityConfig): Array<string> => [
  ...(Option.isNone(c.serviceKey) ? ["SERVICE_KEY"] : []),
  ...(Option.isNone(c.servicePublicKeys) ? ["SERVICE_PUBLIC_KEYS"] : []),
]

/** Why a service token was refused (logs and metrics only). */
export type RefusalReason = "missing" | "malformed" | "unknown_caller" | "bad_signature" | "not_a_dependent"

/** A refused internal call: UNAUTHENTICATED (no or bad identity) or PERMISSION_DENIED (a caller not allowed). */
export type Refusal = Problem.Unauthorized | Problem.Forbidden

/** This function's identity on internal calls: minting tokens for callees, verifying callers' tokens. */
export class ServiceIdentity extends Context.Service<
  ServiceIdentity,
  {
    /** This function's name. */
    readonly name: string
    /** A token for a call to `audience` (cached; renewed at half its life). */
    token(audience: string): Effect.Effect<string>
    /** The verified caller of an incoming token; refused when it is missing, forged, expired or not a dependent. */
    verify(token: string | undefined): Effect.Effect<string, Refusal>
  }
>()("shared/ServiceIdentity") {
  /**
   * The identity of `name`, accepting calls from `callers` (the functions whose manifests depend on it). Keys default
   * to the development keys outside production; `Config`'s production check refuses those.
   */
  static readonly layer = (options: IdentityOptions) => Layer.sync(ServiceIdentity, () => make(options))

  /** Development keys (tests, `npm start`): `name` accepts calls from `callers`, and knows every function's key. */
  static readonly layerDev = (name: string, callers: ReadonlyArray<string> = [], functions = callers) =>
    ServiceIdentity.layer({
      name,
      callers,
      functions,
      config: { serviceKey: Option.none(), servicePublicKeys: Option.none() },
    })
}

/** Who a function is, whom it serves, and its keys. */
export interface IdentityOptions {
  readonly name: string
  /** The functions allowed to call this one (their manifests depend on it); see `callersOf`. */
  readonly callers: ReadonlyArray<string>
  /** Every function of the platform: a verified caller outside `callers` is refused as PERMISSION_DENIED. */
  readonly functions: ReadonlyArray<string>
  readonly config: ServiceIdentityConfig
}

// A token minted for a callee, and when (epoch seconds) a new one replaces it.
interface Minted {
  readonly token: string
  readonly renewAt: number
}

// The caller of a verified token, and when (epoch seconds) the token expires.
interface Verified {
  readonly caller: string
  readonly exp: number
}

// `make` stays a plain function (test helpers sign tokens with it outside any layer); a LocalCache needs no service.
const local = <K, A, E>(options: Parameters<typeof makeLocal<K, A, E>>[0]) => Effect.runSync(makeLocal(options))

// Token times are wall-clock epoch seconds: tokens cross processes, which agree on the wall's time. The caches count
// on the caller's `Clock` (that same time in production, moved by hand under TestClock): a token time is carried over
// as the time left until it, counted from when the lookup was asked.
const onClock = (epochSeconds: number, askedAt: number) => askedAt + (epochSeconds * 1000 - Date.now())

/** Builds the identity (see `ServiceIdentity.layer`). */
export const make = (options: IdentityOptions) => {
  const { name } = options
  const privateKey = Option.match(options.config.serviceKey, {
    onNone: () => devPrivateKey(name),
    onSome: (key) => parsePrivateKey(Redacted.value(key)),
  })
  const configured = Option.getOrUndefined(options.config.servicePublicKeys)
  const publicKeys = new Map<string, KeyObject>()
  if (configured === undefined) {
    for (const fn of new Set([...options.functions, ...options.callers])) {
      publicKeys.set(fn, createPublicKey(devPrivateKey(fn)))
    }
  } else for (const [fn, text] of Object.entries(configured)) publicKeys.set(fn, parsePublicKey(text))
  const allowed = new Set(options.callers)

  // One token per callee, signed once for concurrent first calls and reused until its renewAt (half its life).
  // Callees are this function's dependencies, a handful: unbounded, as they are few.
  const minted = local<string, Minted, never>({
    capacity: Number.POSITIVE_INFINITY,
    lookup: (audience) =>
      Effect.promise(async () => {
        const now = Math.floor(Date.now() / 1000)
        const fresh = await new SignJWT({})
          .setProtectedHeader({ alg: SERVICE_TOKEN_ALG, typ: SERVICE_TOKEN_TYP })
          .setIssuer(name)
          .setSubject(name)
          .setAudience(audience)
          .setIssuedAt(now)
          .setExpirationTime(now + LIFETIME_SECONDS)
          .setJti(randomUUID())
          .sign(privateKey)
        return { token: fresh, renewAt: now + LIFETIME_SECONDS / 2 }
      }),
    expiresAt: (fresh, _audience, askedAt) => onClock(fresh.renewAt, askedAt),
  })
  const token = (audience: string) => Effect.map(minted.get(audience), (fresh) => fresh.token)

  const refuse = (reason: RefusalReason) =>
    Effect.andThen(
      Effect.logWarning("internal call refused", { reason }),
      Effect.fail(
        reason === "not_a_dependent"
          ? new Problem.Forbidden({ detail: `this caller does not declare ${name} as a dependency` })
          : new Problem.Unauthorized({ detail: "a valid service token is required" }),
      ),
    )

  const check = (token: string): Effect.Effect<Verified, Refusal> =>
    Effect.suspend(() => {
      let caller: unknown
      try {
        const header = decodeProtectedHeader(token)
        if (header.alg !== SERVICE_TOKEN_ALG || header.typ !== SERVICE_TOKEN_TYP) return refuse("malformed")
        caller = decodeJwt(token).iss
      } catch {
        return refuse("malformed")
      }
      if (typeof caller !== "string") return refuse("malformed")
      const key = publicKeys.get(caller)
      if (key === undefined) return refuse("unknown_caller")
      return Effect.tryPromise({
        try: () =>
          jwtVerify(token, key, {
            algorithms: [SERVICE_TOKEN_ALG],
            typ: SERVICE_TOKEN_TYP,
            issuer: caller,
            subject: caller,
            audience: name,
            maxTokenAge: LIFETIME_SECONDS + 5,
            clockTolerance: 5,
            requiredClaims: ["iat", "exp", "jti"],
          }),
        catch: () => "bad_signature" as const,
      }).pipe(
        Effect.catch(refuse),
        Effect.flatMap(({ payload }) =>
          // A genuine function that does not declare this one as a dependency: known, but not served.
          allowed.has(caller) ? Effect.succeed({ caller, exp: payload.exp ?? 0 }) : refuse("not_a_dependent"),
        ),
      )
    })

  // Verified tokens are remembered until they expire: a caller's token is reused for 30 s, so most calls cost a lookup.
  // Refusals are not remembered. At most 10 000 tokens, the least recently used going first.
  const verified = local<string, Verified, Refusal>({
    capacity: 10_000,
    lookup: check,
    expiresAt: (known, _token, askedAt) => onClock(known.exp, askedAt),
  })
  const verify = (token: string | undefined): Effect.Effect<string, Refusal> =>
    token === undefined || token === "" ? refuse("missing") : Effect.map(verified.get(token), (known) => known.caller)

  return ServiceIdentity.of({ name, token, verify })
}

/** The functions that may call `name`: those whose manifests list it in `dependsOn`. */
export const callersOf = (
  name: string,
  manifests: ReadonlyArray<{ readonly name: string; readonly dependsOn: ReadonlyArray<string> }>,
): Array<string> => manifests.filter((m) => m.dependsOn.includes(name)).map((m) => m.name)
