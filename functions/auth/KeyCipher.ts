import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto"
import { Context, Effect, Layer, Redacted, Schema } from "effect"

/** The configured key-encryption key is not 32 bytes of base64. */
export class InvalidKeyEncryptionKey extends Schema.TaggedError<InvalidKeyEncryptionKey>()("InvalidKeyEncryptionKey", {
  message: Schema.String,
}) {}

/** A sealed private key could not be opened: wrong key-encryption key, tampered data, or an unknown format. */
export class KeyDecryptionFailed extends Schema.TaggedError<KeyDecryptionFailed>()("KeyDecryptionFailed", {
  reason: Schema.Literals(["wrong_key_or_tampered", "unsupported_format"]),
}) {}

const VERSION = "v1"
const IV_BYTES = 12
const TAG_BYTES = 16

/** Parses a base64 (or base64url) 32-byte key; the value never appears in the error. */
export const parseKeyEncryptionKey = (
  key: Redacted.Redacted<string>,
): Effect.Effect<Redacted.Redacted<Buffer>, InvalidKeyEncryptionKey> => {
  const text = Redacted.value(key).trim()
  const bytes = Buffer.from(text, /[-_]/.test(text) ? "base64url" : "base64")
  return bytes.length === 32
    ? Effect.succeed(Redacted.make(bytes))
    : Effect.fail(
        new InvalidKeyEncryptionKey({ message: `KEY_ENCRYPTION_KEY must be 32 bytes of base64, got ${bytes.length}` }),
      )
}

/**
 * Encrypts private keys at rest with AES-256-GCM: `v1.<iv>.<ciphertext>.<tag>` (base64url), a random 12-byte IV per
 * seal, and associated data (the kid) so a sealed key cannot be moved to another row.
 */
export class KeyCipher extends Context.Service<
  KeyCipher,
  {
    seal(plaintext: Redacted.Redacted<string>, aad: string): Effect.Effect<string>
    open(sealed: string, aad: string): Effect.Effect<Redacted.Redacted<string>, KeyDecryptionFailed>
  }
>()("auth/KeyCipher") {
  /** The cipher over the configured key-encryption key (`KEY_ENCRYPTION_KEY`). */
  static readonly layer = (key: Redacted.Redacted<string>) =>
    Layer.effect(KeyCipher, Effect.map(parseKeyEncryptionKey(key), make))
}

/** Builds the cipher over a parsed 32-byte key (tests, tools). */
export const make = (key: Redacted.Redacted<Buffer>): KeyCipher["Service"] => {
  const seal = (plaintext: Redacted.Redacted<string>, aad: string) =>
    Effect.sync(() => {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv("aes-256-gcm", Redacted.value(key), iv, { authTagLength: TAG_BYTES })
      cipher.setAAD(Buffer.from(aad, "utf8"))
      const ciphertext = Buffer.concat([cipher.update(Redacted.value(plaintext), "utf8"), cipher.final()])
      const parts = [iv, ciphertext, cipher.getAuthTag()].map((b) => b.toString("base64url"))
      return [VERSION, ...parts].join(".")
    })

  const open = (sealed: string, aad: string) =>
    Effect.suspend(() => {
      const [version, iv, ciphertext, tag, ...rest] = sealed.split(".")
      if (version !== VERSION || iv === undefined || ciphertext === undefined || tag === undefined || rest.length > 0)
        return Effect.fail(new KeyDecryptionFailed({ reason: "unsupported_format" }))
      const ivBytes = Buffer.from(iv, "base64url")
      const tagBytes = Buffer.from(tag, "base64url")
      if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES)
        return Effect.fail(new KeyDecryptionFailed({ reason: "unsupported_format" }))
      return Effect.try({
        try: () => {
          const decipher = createDecipheriv("aes-256-gcm", Redacted.value(key), ivBytes, {
            authTagLength: TAG_BYTES,
          })
          decipher.setAAD(Buffer.from(aad, "utf8"))
          decipher.setAuthTag(tagBytes)
          const plain = Buffer.concat([decipher.update(Buffer.from(ciphertext, "base64url")), decipher.final()])
          return Redacted.make(plain.toString("utf8"))
        },
        catch: () => new KeyDecryptionFailed({ reason: "wrong_key_or_tampered" }),
      })
    })

  return KeyCipher.of({ seal, open })
}
