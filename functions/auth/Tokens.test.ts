import { createPublicKey } from "node:crypto"
import { Clock, Effect, Layer, type Redacted, type Scope } from "effect"
import { decodeProtectedHeader, generateKeyPair, SignJWT } from "jose"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { DbOptions } from "../../shared/Db.ts"
import { freshSchema } from "../../shared/testing/harness.ts"
import { SigningKeys } from "./SigningKeys.ts"
import { type InvalidTokenReason, Tokens } from "./Tokens.ts"
import { authLayer, migrateAuth, randomKek, shiftableClock, tokenOptions } from "./testing/authHarness.ts"

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
const fromB64 = (segment: string) => JSON.parse(Buffer.from(segment, "base64url").toString("utf8"))

let db: DbOptions
let kek: Redacted.Redacted<string>
const time = shiftableClock()

// Every test runs against one instance over a migrated schema; the clock is shared and reset after each use.
const run = <A, E>(effect: Effect.Effect<A, E, Tokens | SigningKeys | Scope.Scope>) =>
  Effect.runPromise(
    effect.pipe(
      Effect.provide(authLayer(db, { kek, keys: { rotationInterval: "30 days", retention: "16 minutes" } })),
      Effect.scoped,
      Effect.provideService(Clock.Clock, time.clock),
      Effect.ensuring(Effect.sync(time.reset)),
    ),
  )

const issue = (input = { sub: "user-1", sid: "session-1" }) =>
  Effect.flatMap(Effect.service(Tokens), (tokens) => tokens.issueAccessToken(input))

const reasonOf = (token: string) =>
  Effect.service(Tokens).pipe(
    Effect.flatMap((tokens) => Effect.flip(tokens.verifyAccessToken(token))),
    Effect.map((error): InvalidTokenReason | string => (error._tag === "InvalidToken" ? error.reason : error._tag)),
  )

beforeAll(async () => {
  db = freshSchema("auth")
  kek = randomKek()
  await migrateAuth(db)
})

afterAll(() => time.reset())

describe("Tokens", () => {
  it("issues an EdDSA JWT with kid and the platform claims, and verifies it", async () => {
    const result = await run(
      Effect.gen(function* () {
        const tokens = yield* Tokens
        const issued = yield* tokens.issueAccessToken({ sub: "user-1", sid: "session-1", roles: ["admin"] })
        const claims = yield* tokens.verifyAccessToken(issued.token)
        const kid = (yield* (yield* SigningKeys).activeKey()).kid
        return { issued, claims, kid }
      }),
    )
    expect(decodeProtectedHeader(result.issued.token)).toEqual({ alg: "EdDSA", kid: result.kid, typ: "JWT" })
    expect(result.issued.expiresIn).toBe(900)
    expect(result.claims).toMatchObject({
      iss: tokenOptions.issuer,
      aud: tokenOptions.audience,
      sub: "user-1",
      sid: "session-1",
      jti: result.issued.jti,
      roles: ["admin"],
    })
    expect(result.claims.exp - result.claims.iat).toBe(900)
    expect(result.claims.jti).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("refuses a tampered payload (bad_signature) and garbage (malformed)", async () => {
    const reasons = await run(
      Effect.gen(function* () {
        const { token } = yield* issue()
        const [header, payload, signature] = token.split(".")
        const forged = `${header}.${b64({ ...fromB64(payload!), sub: "admin" })}.${signature}`
        const badSig = `${header}.${payload}.${signature!.slice(0, -4)}AAAA`
        return [yield* reasonOf(forged), yield* reasonOf(badSig), yield* reasonOf("not.a.jwt"), yield* reasonOf("")]
      }),
    )
    expect(reasons).toEqual(["bad_signature", "bad_signature", "malformed", "malformed"])
  })

  it("refuses an expired token, also one issued under a past clock", async () => {
    const reasons = await run(
      Effect.gen(function* () {
        const fresh = yield* issue()
        time.shift("-20 minutes")
        const old = yield* issue()
        time.reset()
        const oldReason = yield* reasonOf(old.token)
        time.shift("906 seconds") // TTL 900 s + 5 s tolerance, then past it
        return [oldReason, yield* reasonOf(fresh.token)]
      }),
    )
    expect(reasons).toEqual(["expired", "expired"])
  })

  it("refuses a wrong audience or a wrong issuer", async () => {
    const reasons = await run(
      Effect.gen(function* () {
        const other = (override: Partial<typeof tokenOptions>) =>
          issue().pipe(Effect.provide(Tokens.layer({ ...tokenOptions, ...override })))
        const wrongAud = yield* other({ audience: "some-other-api" })
        const wrongIss = yield* other({ issuer: "https://evil.test" })
        return [yield* reasonOf(wrongAud.token), yield* reasonOf(wrongIss.token)]
      }),
    )
    expect(reasons).toEqual(["wrong_audience", "wrong_issuer"])
  })

  it("refuses alg none and HS256 signed with the public key (algorithm confusion)", async () => {
    const reasons = await run(
      Effect.gen(function* () {
        const { token } = yield* issue()
        const [, payload] = token.split(".")
        const keys = yield* SigningKeys
        const jwk = (yield* keys.jwks()).keys[0]!
        const none = `${b64({ alg: "none", typ: "JWT", kid: jwk.kid })}.${payload}.`
        const noneUpper = `${b64({ alg: "None", typ: "JWT", kid: jwk.kid })}.${payload}.`
        const claims = fromB64(payload!)
        const hs256With = (secret: Uint8Array) =>
          Effect.promise(() =>
            new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: jwk.kid, typ: "JWT" }).sign(secret),
          )
        const pem = createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" })
        const withPem = yield* hs256With(Buffer.from(pem))
        const withRawX = yield* hs256With(Buffer.from(jwk.x!, "base64url"))
        const withJwkJson = yield* hs256With(Buffer.from(JSON.stringify(jwk)))
        return [none, noneUpper, withPem, withRawX, withJwkJson]
      }).pipe(Effect.flatMap((tokens) => Effect.forEach(tokens, reasonOf))),
    )
    expect(reasons).toEqual([
      "unsupported_alg",
      "unsupported_alg",
      "unsupported_alg",
      "unsupported_alg",
      "unsupported_alg",
    ])
  })

  it("refuses an unknown kid, a missing kid, and a foreign key posing as ours", async () => {
    const reasons = await run(
      Effect.gen(function* () {
        const { token } = yield* issue()
        const claims = fromB64(token.split(".")[1]!)
        const ourKid = (yield* (yield* SigningKeys).activeKey()).kid
        const foreign = yield* Effect.promise(() => generateKeyPair("EdDSA"))
        const signWith = (header: { alg: string; kid?: string; typ: string }) =>
          Effect.promise(() => new SignJWT(claims).setProtectedHeader(header).sign(foreign.privateKey))
        return yield* Effect.forEach(
          [
            yield* signWith({ alg: "EdDSA", kid: "no-such-kid", typ: "JWT" }),
            yield* signWith({ alg: "EdDSA", typ: "JWT" }),
            yield* signWith({ alg: "EdDSA", kid: ourKid, typ: "JWT" }),
          ],
          reasonOf,
        )
      }),
    )
    expect(reasons).toEqual(["unknown_kid", "unknown_kid", "bad_signature"])
  })

  it("after rotation old tokens verify and JWKS lists both; after retention the old key and its tokens are gone", async () => {
    const result = await run(
      Effect.gen(function* () {
        const tokens = yield* Tokens
        const keys = yield* SigningKeys
        const old = yield* issue()
        const oldKid = decodeProtectedHeader(old.token).kid
        const newKid = yield* keys.rotate()
        const fresh = yield* issue()
        const both = (yield* keys.jwks()).keys.map((k) => k.kid)
        const oldStill = yield* tokens.verifyAccessToken(old.token)
        // Retention here (16 min) outlives the token (15 min): once the token has expired the key may go.
        time.shift("17 minutes")
        const after = (yield* keys.jwks()).keys.map((k) => k.kid)
        const oldReason = yield* reasonOf(old.token)
        time.reset()
        const freshStill = yield* tokens.verifyAccessToken(fresh.token)
        return {
          oldKid,
          newKid,
          freshKid: decodeProtectedHeader(fresh.token).kid,
          both,
          oldStill,
          after,
          oldReason,
          freshStill,
        }
      }),
    )
    expect(result.freshKid).toBe(result.newKid)
    expect(result.both).toEqual([result.newKid, result.oldKid])
    expect(result.oldStill.sub).toBe("user-1")
    expect(result.after).toEqual([result.newKid])
    expect(result.oldReason).toBe("unknown_kid")
    expect(result.freshStill.sub).toBe("user-1")
  })

  it("a running second instance verifies tokens signed with a key the first rotated in", async () => {
    const result = await run(
      Effect.gen(function* () {
        const other = yield* Layer.build(authLayer(db, { kek }))
        const otherTokens = yield* Effect.service(Tokens).pipe(Effect.provide(other))
        yield* (yield* SigningKeys).rotate()
        const issued = yield* issue()
        time.shift("2 seconds") // an unknown kid reloads the other instance's key ring at most once a second
        return { issued, claims: yield* otherTokens.verifyAccessToken(issued.token) }
      }),
    )
    expect(result.claims.jti).toBe(result.issued.jti)
  })
})
