import { randomBytes } from "node:crypto"
import { Clock, Duration, Effect, Layer, Redacted } from "effect"
import { Db, type DbOptions } from "../../../shared/Db.ts"
import { migrate } from "../../../shared/Migrator.ts"
import { KeyCipher } from "../KeyCipher.ts"
import { migrations } from "../migrations/index.ts"
import { SigningKeys, type SigningKeysOptions } from "../SigningKeys.ts"
import { SigningKeysRepo } from "../SigningKeysRepo.ts"
import { Tokens, type TokensOptions } from "../Tokens.ts"

/** A random base64 key-encryption key, as `KEY_ENCRYPTION_KEY` would hold. */
export const randomKek = (): Redacted.Redacted<string> => Redacted.make(randomBytes(32).toString("base64"))

/** A wall clock that tests can move forward or back; everything that reads `Clock` sees it. */
export const shiftableClock = () => {
  const real = Clock.Clock.defaultValue()
  let offset = 0
  const now = () => real.currentTimeMillisUnsafe() + offset
  const clock: Clock.Clock = {
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos,
    sleep: (duration) => real.sleep(duration),
    currentTimeMillisUnsafe: now,
    currentTimeMillis: Effect.sync(now),
    currentTimeNanosUnsafe: () => BigInt(now()) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(now()) * 1_000_000n),
  }
  return {
    clock,
    shift: (by: Duration.Input) => {
      offset += Duration.toMillis(Duration.fromInputUnsafe(by))
    },
    reset: () => {
      offset = 0
    },
  }
}

/** Default token settings of the tests. */
export const tokenOptions: TokensOptions = {
  issuer: "https://auth.test",
  audience: "platform-test",
  ttlSeconds: 900,
  clockToleranceSeconds: 5,
}

/** Default key settings of the tests: rotation every 30 days, retired keys published for TTL + 60 s. */
export const keyOptions: SigningKeysOptions = { rotationInterval: "30 days", retention: "960 seconds" }

/** Applies auth's migrations to the schema. */
export const migrateAuth = (db: DbOptions) =>
  Effect.runPromise(migrate(migrations).pipe(Effect.provide(Db.layer(db)), Effect.scoped))

/** One auth instance: Db, cipher, repo, signing keys and tokens (its own pool, as a separate container). */
export const authLayer = (
  db: DbOptions,
  options: {
    readonly kek: Redacted.Redacted<string>
    readonly keys?: SigningKeysOptions
    readonly tokens?: TokensOptions
  },
) =>
  Tokens.layer(options.tokens ?? tokenOptions).pipe(
    Layer.provideMerge(SigningKeys.layer(options.keys ?? keyOptions)),
    Layer.provideMerge(SigningKeysRepo.layer),
    Layer.provideMerge(KeyCipher.layer(options.kek)),
    Layer.provideMerge(Layer.fresh(Db.layer(db))),
  )
