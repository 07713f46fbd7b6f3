import { Clock, Effect, Layer, Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { freshSchema, sql } from "../../shared/testing/harness.ts"
import { KeyDecryptionFailed, make as makeCipher, parseKeyEncryptionKey } from "./KeyCipher.ts"
import { SigningKeys } from "./SigningKeys.ts"
import { authLayer, migrateAuth, randomKek, shiftableClock } from "./testing/authHarness.ts"

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(effect)

const cipherFor = (kek: Redacted.Redacted<string>) => Effect.runSync(Effect.map(parseKeyEncryptionKey(kek), makeCipher))

describe("KeyCipher", () => {
  it("opens what it sealed, and fails typed with another key, a moved blob or a tampered one", async () => {
    const secret = Redacted.make("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    const right = cipherFor(randomKek())
    const sealed = await run(right.seal(secret, "kid-1"))
    expect(sealed).toMatch(/^v1\.[\w-]{16}\.[\w-]+\.[\w-]{22}$/)
    expect(sealed).not.toContain("PRIVATE")
    expect(Redacted.value(await run(right.open(sealed, "kid-1")))).toBe(Redacted.value(secret))
    expect(await run(right.seal(secret, "kid-1"))).not.toBe(sealed) // fresh IV every time

    const failure = (effect: Effect.Effect<unknown, KeyDecryptionFailed>) => run(Effect.flip(effect))
    const wrong = cipherFor(randomKek())
    expect(await failure(wrong.open(sealed, "kid-1"))).toEqual(
      new KeyDecryptionFailed({ reason: "wrong_key_or_tampered" }),
    )
    expect((await failure(right.open(sealed, "kid-2"))).reason).toBe("wrong_key_or_tampered")
    const [v, iv, ct = "", tag] = sealed.split(".")
    const flipped = `${ct[0] === "A" ? "B" : "A"}${ct.slice(1)}`
    expect((await failure(right.open([v, iv, flipped, tag].join("."), "kid-1"))).reason).toBe("wrong_key_or_tampered")
    expect((await failure(right.open(`v9.${sealed.slice(3)}`, "kid-1"))).reason).toBe("unsupported_format")
  })

  it("refuses a key-encryption key that is not 32 bytes", async () => {
    const error = await run(Effect.flip(parseKeyEncryptionKey(Redacted.make(Buffer.alloc(16).toString("base64")))))
    expect(error._tag).toBe("InvalidKeyEncryptionKey")
    expect(error.message).toContain("got 16")
  })
})

describe("SigningKeys", () => {
  it("two instances starting at once create exactly one active key", async () => {
    const db = freshSchema("auth")
    await migrateAuth(db)
    const kek = randomKek()
    const activeKid = Effect.gen(function* () {
      return (yield* (yield* SigningKeys).activeKey()).kid
    })
    const instance = () => run(activeKid.pipe(Effect.provide(authLayer(db, { kek })), Effect.scoped))
    const [a, b] = await Promise.all([instance(), instance()])
    expect(a).toBe(b)
    const rows = await sql(`SELECT kid, retired_at FROM ${db.schema}.signing_keys`)
    expect(rows).toEqual([{ kid: a, retired_at: null }])
  })

  it("stores the private key encrypted; it opens only with the configured key", async () => {
    const db = freshSchema("auth")
    await migrateAuth(db)
    const kek = randomKek()
    const jwks = await run(
      Effect.gen(function* () {
        return yield* (yield* SigningKeys).jwks()
      }).pipe(Effect.provide(authLayer(db, { kek })), Effect.scoped),
    )
    const [row] = await sql(`SELECT kid, alg, public_jwk, private_key_enc::text AS enc, row_to_json(k)::text AS raw
                             FROM ${db.schema}.signing_keys k`)
    expect(row.alg).toBe("EdDSA")
    expect(row.public_jwk).not.toHaveProperty("d")
    expect(row.raw).not.toMatch(/PRIVATE KEY|"d"\s*:|MC4CAQ/) // no PEM, no JWK "d", no base64 PKCS#8 prefix
    expect(row.enc).toMatch(/^v1\./)
    const pem = await run(cipherFor(kek).open(row.enc, row.kid))
    expect(Redacted.value(pem)).toContain("-----BEGIN PRIVATE KEY-----")
    expect((await run(Effect.flip(cipherFor(randomKek()).open(row.enc, row.kid)))).reason).toBe("wrong_key_or_tampered")
    expect(jwks.keys).toEqual([
      { kty: "OKP", crv: "Ed25519", x: expect.any(String), kid: row.kid, alg: "EdDSA", use: "sig" },
    ])

    // A start with the wrong key-encryption key fails instead of serving with a key it cannot use.
    const start = Effect.flip(Effect.scoped(Layer.build(authLayer(db, { kek: randomKek() }))))
    expect(await run(start)).toMatchObject({ _tag: "KeyDecryptionFailed", reason: "wrong_key_or_tampered" })
  })

  it("rotates: the previous key stays published and verifiable until its retention ends", async () => {
    const db = freshSchema("auth")
    await migrateAuth(db)
    const kek = randomKek()
    const time = shiftableClock()
    const keys = { rotationInterval: "30 days", retention: "10 minutes" } as const
    const program = Effect.gen(function* () {
      const signing = yield* SigningKeys
      const first = (yield* signing.activeKey()).kid
      const rotated = yield* signing.rotate()
      const second = (yield* signing.activeKey()).kid
      const afterRotate = (yield* signing.jwks()).keys.map((k) => k.kid)
      time.shift("9 minutes")
      const stillPublished = (yield* signing.jwks()).keys.map((k) => k.kid)
      const oldStillVerifies = Option.isSome(yield* signing.verificationKey(first))
      time.shift("2 minutes")
      const afterRetention = (yield* signing.jwks()).keys.map((k) => k.kid)
      const oldAfter = yield* signing.verificationKey(first)
      return { first, second, rotated, afterRotate, stillPublished, oldStillVerifies, afterRetention, oldAfter }
    })
    const result = await run(
      program.pipe(
        Effect.provide(authLayer(db, { kek, keys })),
        Effect.scoped,
        Effect.provideService(Clock.Clock, time.clock),
      ),
    )
    expect(result.second).not.toBe(result.first)
    expect(result.rotated).toBe(result.second)
    expect(result.afterRotate).toEqual([result.second, result.first])
    expect(result.stillPublished).toEqual([result.second, result.first])
    expect(result.oldStillVerifies).toBe(true)
    expect(result.afterRetention).toEqual([result.second])
    expect(Option.isNone(result.oldAfter)).toBe(true)
    const rows = await sql(`SELECT kid, retired_at IS NULL AS active FROM ${db.schema}.signing_keys ORDER BY active`)
    expect(rows).toEqual([
      { kid: result.first, active: false },
      { kid: result.second, active: true },
    ])
  })

  it("instances checking the schedule at the same time rotate once", async () => {
    const db = freshSchema("auth")
    await migrateAuth(db)
    const kek = randomKek()
    const time = shiftableClock()
    const program = Effect.gen(function* () {
      const others = yield* Effect.forEach([1, 2, 3], () =>
        Effect.flatMap(Layer.build(authLayer(db, { kek })), (context) =>
          Effect.service(SigningKeys).pipe(Effect.provide(context)),
        ),
      )
      time.shift("31 days")
      return yield* Effect.forEach(others, (keys) => keys.rotateIfDue(), { concurrency: "unbounded" })
    })
    const results = await run(program.pipe(Effect.scoped, Effect.provideService(Clock.Clock, time.clock)))
    expect(results.filter(Option.isSome)).toHaveLength(1)
    expect(await sql(`SELECT count(*)::int AS n FROM ${db.schema}.signing_keys`)).toEqual([{ n: 2 }])
  })

  it("rotates on schedule once the active key is older than the interval", async () => {
    const db = freshSchema("auth")
    await migrateAuth(db)
    const kek = randomKek()
    const time = shiftableClock()
    const program = Effect.gen(function* () {
      const signing = yield* SigningKeys
      const notDue = yield* signing.rotateIfDue()
      time.shift("31 days")
      const due = yield* signing.rotateIfDue()
      return { notDue, due, active: (yield* signing.activeKey()).kid }
    })
    const result = await run(
      program.pipe(
        Effect.provide(authLayer(db, { kek })),
        Effect.scoped,
        Effect.provideService(Clock.Clock, time.clock),
      ),
    )
    expect(Option.isNone(result.notDue)).toBe(true)
    expect(result.due).toEqual(Option.some(result.active))

    // The forked loop: a 300 ms interval checked every 100 ms rotates by itself.
    const db2 = freshSchema("auth")
    await migrateAuth(db2)
    const keys = { rotationInterval: "300 millis", retention: "1 minute", checkInterval: "100 millis" } as const
    await run(Effect.sleep("800 millis").pipe(Effect.provide(authLayer(db2, { kek, keys })), Effect.scoped))
    const [{ n }] = await sql(`SELECT count(*)::int AS n FROM ${db2.schema}.signing_keys`)
    expect(n).toBeGreaterThanOrEqual(2)
    expect(await sql(`SELECT count(*)::int AS n FROM ${db2.schema}.signing_keys WHERE retired_at IS NULL`)).toEqual([
      { n: 1 },
    ])
  })
})
