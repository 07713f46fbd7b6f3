import { Clock, Effect, Option } from "effect"
import { generateKeyPair, SignJWT } from "jose"
import { describe, expect, it } from "vitest"
import * as AccessToken from "./AccessToken.ts"

const options = { issuer: "https://auth.test", audience: "platform-test" }

const setup = async () => {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA")
  let lookups = 0
  const resolveKey: AccessToken.KeyResolver = () =>
    Effect.sync(() => {
      lookups++
      return Option.some({ alg: "EdDSA", publicKey })
    })
  const sign = (expInSeconds: number, sid = "s1") =>
    new SignJWT({ sid })
      .setProtectedHeader({ alg: "EdDSA", kid: "k1", typ: "JWT" })
      .setIssuer(options.issuer)
      .setAudience(options.audience)
      .setSubject("u1")
      .setJti(crypto.randomUUID())
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + expInSeconds)
      .sign(privateKey)
  return { resolveKey, sign, lookups: () => lookups }
}

describe("AccessToken.cachedVerifier", () => {
  it("verifies a token once, then answers from memory until its exp; refusals are never remembered", async () => {
    const { resolveKey, sign, lookups } = await setup()
    const verify = Effect.runSync(AccessToken.cachedVerifier(resolveKey, options))
    const token = await sign(600)
    const first = await Effect.runPromise(verify(token))
    const second = await Effect.runPromise(verify(token))
    expect(second).toEqual(first)
    expect(lookups()).toBe(1)

    const tampered = `${token.slice(0, -4)}AAAA`
    for (let i = 0; i < 2; i++) {
      const error = await Effect.runPromise(Effect.flip(verify(tampered)))
      expect(error._tag).toBe("InvalidToken")
    }
    expect(lookups()).toBe(3)
  })

  it("a remembered token past its exp is verified again (and refused)", async () => {
    const { resolveKey, sign } = await setup()
    const verify = Effect.runSync(AccessToken.cachedVerifier(resolveKey, options))
    const token = await sign(60)
    await Effect.runPromise(verify(token))
    const later = Clock.Clock.defaultValue()
    const shifted: Clock.Clock = {
      ...later,
      currentTimeMillisUnsafe: () => later.currentTimeMillisUnsafe() + 120_000,
      currentTimeMillis: Effect.sync(() => later.currentTimeMillisUnsafe() + 120_000),
    }
    const error = await Effect.runPromise(Effect.flip(verify(token)).pipe(Effect.provideService(Clock.Clock, shifted)))
    expect(error._tag === "InvalidToken" && error.reason).toBe("expired")
  })
})
