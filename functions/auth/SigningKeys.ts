import { Clock, Context, Duration, Effect, Layer, Option, Redacted, Ref, Schedule, Semaphore } from "effect"
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8, type JWK } from "jose"
import { ACCESS_TOKEN_ALG } from "../../shared/access/AccessToken.ts"
import { Db, type DbError } from "../../shared/Db.ts"
import type { ServiceUnavailable } from "../../shared/Problem.ts"
import * as Problem from "../../shared/Problem.ts"
import { KeyCipher, type KeyDecryptionFailed } from "./KeyCipher.ts"
import { type SigningKeyRow, SigningKeysRepo } from "./SigningKeysRepo.ts"

/** The key that signs new tokens; the private key never leaves the process and is never logged. */
export interface ActiveSigningKey {
  readonly kid: string
  readonly alg: string
  readonly privateKey: CryptoKey
}

/** A key tokens may be verified with: the active key or a retired one still inside its retention window. */
export interface VerificationKey {
  readonly kid: string
  readonly alg: string
  readonly publicKey: CryptoKey
}

/** A public JWK as served at `/.well-known/jwks.json`. */
export type PublicJwk = JWK & { readonly kid: string; readonly alg: string; readonly use: "sig" }

/** A WebCrypto key as jose produces and consumes it. */
export type CryptoKey = Awaited<ReturnType<typeof importPKCS8>>

/** Timing of key rotation; `retention` must cover the access-token lifetime plus a grace for clock skew and caches. */
export interface SigningKeysOptions {
  /** How long a key signs before it is replaced (`SIGNING_KEY_ROTATION_DAYS`, default 30 days). */
  readonly rotationInterval: Duration.Input
  /** How long a retired key stays in the JWKS and verifies tokens (access-token TTL + grace). */
  readonly retention: Duration.Input
  /** How often the in-memory key ring is reloaded, so keys rotated by another instance are picked up (60 s). */
  readonly refreshInterval?: Duration.Input
  /** How often the rotation loop checks whether the active key is due (1 h, capped at the rotation interval). */
  readonly checkInterval?: Duration.Input
}

interface PublishedKey extends VerificationKey {
  readonly jwk: PublicJwk
  readonly expiresAt: number | null
}

interface Keyring {
  readonly loadedAt: number
  readonly active: ActiveSigningKey
  readonly published: ReadonlyArray<PublishedKey>
}

// A missing kid is looked up again in the database at most this often (unknown kids must not hammer it).
const MIN_REFETCH_MS = 1_000

/** Auth's signing keys: one active key, retired keys kept for verification until their retention ends. */
export class SigningKeys extends Context.Service<
  SigningKeys,
  {
    /** The key new tokens are signed with. */
    activeKey(): Effect.Effect<ActiveSigningKey, ServiceUnavailable>
    /** The key with this kid when it may still verify tokens; None for unknown or expired kids. */
    verificationKey(kid: string): Effect.Effect<Option.Option<VerificationKey>, ServiceUnavailable>
    /** The public JWKS: the active key and the retired keys still inside their retention window. */
    jwks(): Effect.Effect<{ readonly keys: ReadonlyArray<PublicJwk> }, ServiceUnavailable>
    /** Replaces the active key now; the previous one stays published for `retention`. Returns the new active kid. */
    rotate(): Effect.Effect<string, ServiceUnavailable>
    /** Rotates when the active key is older than the rotation interval; Some(new kid) when it did. */
    rotateIfDue(): Effect.Effect<Option.Option<string>, ServiceUnavailable>
  }
>()("auth/SigningKeys") {
  /**
   * Ensures an active key exists (safe with concurrent starts: the one-active unique index decides), loads the key
   * ring (failing the start when the key-encryption key cannot open it) and forks the scheduled rotation.
   */
  static readonly layer = (options: SigningKeysOptions) =>
    Layer.effect(
      SigningKeys,
      Effect.gen(function* () {
        const db = yield* Db
        const repo = yield* SigningKeysRepo
        const cipher = yield* KeyCipher
        const rotationInterval = Duration.fromInputUnsafe(options.rotationInterval)
        const retention = Duration.fromInputUnsafe(options.retention)
        const refreshMs = Duration.toMillis(Duration.fromInputUnsafe(options.refreshInterval ?? "60 seconds"))
        const checkInterval = Duration.min(
          Duration.fromInputUnsafe(options.checkInterval ?? "1 hour"),
          rotationInterval,
        )

        const generate = Effect.fn("SigningKeys.generate")(function* (activatedAt: Date) {
          const pair = yield* Effect.promise(() => generateKeyPair(ACCESS_TOKEN_ALG, { extractable: true }))
          const exported = yield* Effect.promise(() => exportJWK(pair.publicKey))
          const kid = yield* Effect.promise(() => calculateJwkThumbprint(exported))
          const publicJwk: PublicJwk = { ...exported, kid, alg: ACCESS_TOKEN_ALG, use: "sig" }
          const pem = Redacted.make(yield* Effect.promise(() => exportPKCS8(pair.privateKey)))
          const privateKeyEnc = yield* cipher.seal(pem, kid)
          return { kid, alg: ACCESS_TOKEN_ALG, publicJwk, privateKeyEnc, activatedAt }
        })

        const load = Effect.fn("SigningKeys.load")(function* () {
          const now = yield* Clock.currentTimeMillis
          const rows = yield* repo.listPublished(new Date(now))
          const activeRow = rows.find((row) => row.retiredAt === null)
          if (!activeRow) return yield* Effect.die(new Error("no active signing key"))
          const pem = yield* cipher.open(activeRow.privateKeyEnc, activeRow.kid)
          const privateKey = yield* Effect.promise(() => importPKCS8(Redacted.value(pem), activeRow.alg))
          const published = yield* Effect.forEach(rows, toPublished)
          const ring: Keyring = {
            loadedAt: now,
            active: { kid: activeRow.kid, alg: activeRow.alg, privateKey },
            published,
          }
          return ring
        })

        const ensureActive = Effect.fn("SigningKeys.ensureActive")(function* () {
          if (Option.isSome(yield* repo.findActive())) return
          const key = yield* generate(new Date(yield* Clock.currentTimeMillis))
          const inserted = yield* repo.insertActive(key)
          yield* inserted
            ? Effect.logInfo("signing key created", { kid: key.kid })
            : Effect.logDebug("another instance created the first signing key")
        })

        yield* ensureActive()
        const ring = yield* Ref.make(yield* load())
        const lock = yield* Semaphore.make(1)

        const reload = Effect.fn("SigningKeys.reload")(function* () {
          const next = yield* load()
          yield* Ref.set(ring, next)
          return next
        }, Effect.catch(toUnavailable))

        // Reloads under a lock; callers that waited reuse the ring another fiber just loaded.
        const freshRing = (maxAgeMs: number) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const current = yield* Ref.get(ring)
            if (now - current.loadedAt < maxAgeMs) return current
            return yield* lock.withPermit(
              Effect.gen(function* () {
                const latest = yield* Ref.get(ring)
                return now - latest.loadedAt < maxAgeMs ? latest : yield* reload()
              }),
            )
          })

        const activeKey = Effect.fn("SigningKeys.activeKey")(function* () {
          return (yield* freshRing(refreshMs)).active
        })

        const verificationKey = Effect.fn("SigningKeys.verificationKey")(function* (kid: string) {
          const now = yield* Clock.currentTimeMillis
          const find = (keys: Keyring) => keys.published.find((key) => key.kid === kid)
          let key = find(yield* freshRing(refreshMs))
          if (!key) key = find(yield* freshRing(MIN_REFETCH_MS))
          if (!key || (key.expiresAt !== null && key.expiresAt <= now)) return Option.none<VerificationKey>()
          return Option.some<VerificationKey>({ kid: key.kid, alg: key.alg, publicKey: key.publicKey })
        })

        const jwks = Effect.fn("SigningKeys.jwks")(function* () {
          const now = yield* Clock.currentTimeMillis
          const keys = (yield* freshRing(refreshMs)).published
          return { keys: keys.filter((key) => key.expiresAt === null || key.expiresAt > now).map((key) => key.jwk) }
        })

        // Retire-then-insert in one transaction: the UPDATE's row lock serialises instances, and a second rotation
        // that waited finds the key already retired and does nothing.
        const rotateOlderThan = (age: Duration.Duration) =>
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const dueBefore = now - Duration.toMillis(age)
            // The hourly check is one query while the active key is young: no key pair made, no reload.
            const active = yield* repo.findActive()
            if (Option.isSome(active) && active.value.activatedAt.getTime() > dueBefore) return Option.none<string>()
            const next = yield* generate(new Date(now))
            const rotated = yield* db.transaction(
              Effect.gen(function* () {
                const retired = yield* repo.retireActive({
                  now: new Date(now),
                  expiresAt: new Date(now + Duration.toMillis(retention)),
                  dueBefore: new Date(dueBefore),
                })
                if (Option.isNone(retired)) return Option.none<string>()
                if (!(yield* repo.insertActive(next))) return yield* Effect.die(new Error("active key reappeared"))
                yield* Effect.logInfo("signing key rotated", { retired: retired.value, active: next.kid })
                return Option.some(next.kid)
              }),
            )
            if (Option.isSome(rotated)) yield* lock.withPermit(reload())
            return rotated
          }).pipe(Effect.catchTag("DbError", toUnavailable))

        const rotate = Effect.fn("SigningKeys.rotate")(function* () {
          const rotated = yield* rotateOlderThan(Duration.zero)
          return Option.isSome(rotated) ? rotated.value : (yield* Ref.get(ring)).active.kid
        })

        const rotateIfDue = Effect.fn("SigningKeys.rotateIfDue")(function* () {
          return yield* rotateOlderThan(rotationInterval)
        })

        yield* rotateIfDue().pipe(
          Effect.catch((error) => Effect.logWarning("scheduled signing key rotation failed", error.detail)),
          Effect.repeat(Schedule.spaced(checkInterval)),
          Effect.forkScoped,
        )

        return SigningKeys.of({ activeKey, verificationKey, jwks, rotate, rotateIfDue })
      }),
    )
}

const toPublished = (row: SigningKeyRow) =>
  Effect.promise(async (): Promise<PublishedKey> => {
    const jwk = { ...row.publicJwk, kid: row.kid, alg: row.alg, use: "sig" } as PublicJwk
    const publicKey = (await importJWK(jwk, row.alg)) as CryptoKey
    return { kid: row.kid, alg: row.alg, publicKey, jwk, expiresAt: row.expiresAt?.getTime() ?? null }
  })

const toUnavailable = (error: DbError | KeyDecryptionFailed): Effect.Effect<never, ServiceUnavailable> =>
  Problem.unavailable(
    "signing keys unavailable",
    "signing keys are unavailable, retry later",
  )(error._tag === "DbError" ? error.message : error.reason)
